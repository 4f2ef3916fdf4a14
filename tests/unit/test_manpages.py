"""The man pages come from the parsers and the schema: every option `--help` prints and every
key of config/schema.py is in them (and in docs/configuration.md), and they render cleanly."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from logoutd.config.schema import OPTIONS
from logoutd.manpages import install, pages

REPO = Path(__file__).resolve().parents[2]
OPTION = re.compile(r"(?<![\w-])(--?[a-zA-Z][\w-]*)")


def _help(*argv: str) -> str:
    return subprocess.run([sys.executable, *argv, "--help"], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def _plain(page: str) -> str:
    return re.sub(r"\\f[BIR]", "", page).replace("\\-", "-").replace("\\e", "\\")


def test_every_option_of_help_is_in_the_man_pages() -> None:
    generated = pages()
    for argv, rel in ((["-m", "logoutd"], "man8/logoutd.8"),
                      (["-m", "logoutd.cli.ctl"], "man1/logoutctl.1")):
        text = _help(*argv)
        options = set(OPTION.findall(text.split("Options:")[-1] if "Options:" in text else text))
        options -= {"-IS"}
        assert len(options) > 8, options
        page = _plain(generated[rel])
        missing = sorted(o for o in options if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", page))
        assert not missing, (rel, missing)


def test_every_config_key_is_in_the_man_page_and_the_docs() -> None:
    page = _plain(pages()["man5/logoutd.conf.5"])
    docs = (REPO / "docs/configuration.md").read_text()
    used = [o for o in OPTIONS if o.field is not None]
    assert used
    for option in OPTIONS:
        assert f"{option.key}=" in page, option.key
    missing = [o.key for o in used if o.key not in docs]
    assert not missing, missing


@pytest.mark.skipif(shutil.which("man") is None, reason="man-db is not installed")
def test_pages_render_without_warnings(tmp_path: Path) -> None:
    install(tmp_path)
    for name, section in (("logoutctl", "1"), ("logoutd", "8"), ("logoutd.conf", "5")):
        out = subprocess.run(["man", "--warnings", "-M", str(tmp_path), section, name],
                             capture_output=True, text=True, timeout=60,
                             env={"MANPAGER": "cat", "PAGER": "cat", "MANWIDTH": "80",
                                  "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        assert out.returncode == 0, out.stderr
        assert out.stderr == "", out.stderr
        assert out.stdout.startswith(f"{name.upper()}({section})"), out.stdout[:200]
