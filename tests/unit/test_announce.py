"""What the daemon logs at start: the PAM line (only while no PAM file runs the hook), naming
its runtime dir when it is not the default; a warning when it runs inside a tree it manages."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from logoutd.daemon.main import _announce
from logoutd.daemon.selfcheck import inside_managed_tree, pam_hook_enabled
from logoutd.paths import Paths
from tests.unit.conftest import make_core


@pytest.mark.parametrize(("runtime_dir", "tail"), [
    ("/run/logoutd", "type=open_session /usr/local/bin/logoutd-pam"),
    ("/srv/run", "type=open_session /usr/local/bin/logoutd-pam --runtime-dir /srv/run"),
])
def test_pam_line(caplog: pytest.LogCaptureFixture, tmp_path: Path, runtime_dir: str,
                  tail: str) -> None:
    paths = Paths(root=tmp_path, runtime_dir=Path(runtime_dir), socket=Path("/elsewhere/api.sock"))
    with caplog.at_level(logging.INFO, logger="logoutd"):
        _announce(paths, make_core().manager)
    [line] = [r.getMessage() for r in caplog.records if "pam_exec.so" in r.getMessage()]
    assert line.endswith(f"seteuid {tail}"), line


@pytest.mark.parametrize(("argv", "line"), [
    ([], "session optional pam_exec.so quiet seteuid type=open_session {dest}"),
    (["--close"], "session optional pam_exec.so quiet seteuid {dest}"),
])
def test_installer_prints_the_open_only_line_unless_close(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], line: str) -> None:
    from logoutd.pam.install import main

    dest = tmp_path / "logoutd-pam"
    assert main(["--dest", str(dest), *argv]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert f"  {line.format(dest=dest)}" in printed, printed


def test_no_pam_line_once_a_pam_file_runs_the_hook(caplog: pytest.LogCaptureFixture,
                                                    tmp_path: Path) -> None:
    pam = tmp_path / "etc/pam.d"
    pam.mkdir(parents=True)
    (pam / "common-session").write_text("session required pam_unix.so\n"
                                        "# session optional pam_exec.so /usr/local/bin/logoutd-pam\n")
    paths = Paths(root=tmp_path, runtime_dir=Path("/run/logoutd"))
    with caplog.at_level(logging.INFO, logger="logoutd"):
        _announce(paths, make_core().manager)
    assert any("pam_exec.so" in r.getMessage() for r in caplog.records)  # a comment is no line
    (pam / "sshd").write_text("@include common-auth\n"
                              "session optional pam_exec.so quiet seteuid /usr/local/bin/logoutd-pam\n")
    assert pam_hook_enabled(pam, Path("/usr/local/bin/logoutd-pam")) == pam / "sshd"
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="logoutd"):
        _announce(paths, make_core().manager)
    assert not any("pam_exec.so" in r.getMessage() for r in caplog.records), caplog.text


def test_warns_when_started_inside_a_session_scope(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
    root = Path("/sys/fs/cgroup/unified/logoutd-x")
    inside = inside_managed_tree(
        root, "/logoutd-x/user.slice/user-1000.slice/session-7.scope", str(mounts))
    assert inside is not None and "session scope 7" in inside and "killed" in inside, inside
    assert "user slice" in (inside_managed_tree(
        root, "/logoutd-x/user.slice/user-1000.slice/user@1000.service/x", str(mounts)) or "")
    assert inside_managed_tree(root, "/logoutd-x/daemon", str(mounts)) is None
    assert inside_managed_tree(root, "/other/user.slice/user-1.slice/session-1.scope",
                               str(mounts)) is None
