"""docs/install.md's uninstall removes everything installing added: each file the installers
write by default and each destination an install step of the docs names."""

from __future__ import annotations

import re
from pathlib import Path

from logoutd import ctlwrapper, manpages
from logoutd.pam.install import DEFAULT_DEST as HOOK
from logoutd.pam.install import code_path, fail_safe_path

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs/install.md").read_text()


def _sections() -> tuple[str, str]:
    start = DOC.index("## Uninstalling")
    end = DOC.index("\n## ", start + 1)
    return DOC[:start] + DOC[end:], DOC[start:end]


def _destinations(text: str) -> set[str]:
    """Where the install steps' commands (install, cp -r, ln -s, --profile-script) write."""
    found = set()
    for line in text.splitlines():
        words = line.split("#")[0].split()
        if not words:
            continue
        if words[0] in ("install", "cp", "ln") and len(words) >= 3:
            dest = words[-1]
            if dest.endswith("/"):
                dest += Path(words[-2]).name
            found.add(dest)
        if "--profile-script" in words:
            found.add(words[words.index("--profile-script") + 1])
    return found


def test_uninstall_removes_what_the_installers_write() -> None:
    _, uninstall = _sections()
    written = [HOOK, fail_safe_path(HOOK), code_path(HOOK), ctlwrapper.DEFAULT_DEST,
               *(manpages.DEFAULT_DEST / rel for rel in manpages.pages())]
    missing = [str(p) for p in written if str(p) not in uninstall]
    assert not missing, missing


def test_uninstall_removes_every_destination_the_install_steps_name() -> None:
    install, uninstall = _sections()
    destinations = _destinations(install)
    assert {"/etc/logrotate.d/logoutd", "/etc/sv/logoutd", "/etc/init.d/logoutd",
            "/usr/share/bash-completion/completions/logoutctl",
            "/etc/profile.d/logoutd.sh"} <= destinations, destinations
    missing = sorted(d for d in destinations
                     if not re.search(rf"{re.escape(d)}(?![\w.-])", uninstall))
    assert not missing, missing


def test_the_daemon_link_never_replaces_another_install(tmp_path: Path) -> None:
    script = tmp_path / "venv-bin-logoutd"
    script.write_text("#!/bin/sh\n")
    dest = tmp_path / "logoutd"
    assert "->" in ctlwrapper.link_daemon(dest, script) and dest.resolve() == script
    assert "->" in ctlwrapper.link_daemon(dest, script)  # again: replaced, still a link
    dest.unlink()
    dest.write_text("#!/usr/bin/python3\n")  # pip's console script
    assert "left as it is" in ctlwrapper.link_daemon(dest, script)
    assert dest.read_text() == "#!/usr/bin/python3\n"
