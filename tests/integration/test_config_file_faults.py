"""A drop-in that is a directory, a FIFO, a device or not UTF-8: `logoutctl reload` says so in
one line naming the file, the running daemon keeps its configuration and keeps answering
(issue 13, "Bad input and faults")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.harness.ctl import ctl


def _dir(p: Path) -> None:
    p.mkdir()


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _zero(p: Path) -> None:
    p.symlink_to("/dev/zero")


def _latin1(p: Path) -> None:
    p.write_bytes(b"[Login]\nKillUserProcesses=n\xe9\n")


@pytest.mark.parametrize(("make", "says"), [
    (_dir, "Error while reading configuration file: Is a directory"),
    (_fifo, "not a regular file (a FIFO)"),
    (_zero, "not a regular file (a character device)"),
    (_latin1, ":2: String is not UTF-8 clean, ignoring assignment: KillUserProcesses=n"),
], ids=["directory", "fifo", "dev-zero", "not-utf8"])
def test_a_bad_config_file_is_one_line_and_changes_nothing(env, start_daemon, make, says) -> None:  # type: ignore[no-untyped-def]
    daemon = start_daemon("[Login]\nKillUserProcesses=no\n")
    bad = daemon.dropin_dir / "60-bad.conf"
    make(bad)
    result = ctl(env, "reload")
    assert result.rc != 0, result
    lines = [x for x in result.err.splitlines() if str(bad) in x]
    assert len(lines) == 1 and says in lines[0], result
    status = daemon.call("status")  # still answering, same configuration
    assert status["config_files"][-1] == str(daemon.dropin_dir / "50-test.conf"), status
    shown = ctl(env, "show-config", "KillUserProcesses")
    assert shown.rc == 0 and "no" in shown.out, shown
    assert daemon.running()
