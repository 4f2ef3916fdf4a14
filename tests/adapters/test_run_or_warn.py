"""`logoutctl run --scope --or-warn` (the shell integration's path): a daemon that is missing or
does not answer costs one warning and a bounded wait, and the command is exec'd all the same."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path
from typing import NoReturn

import pytest

from logoutd.cli.ctl import main
from logoutd.cli.ctl import run as run_verb


class Execed(Exception):
    pass


@pytest.fixture
def execed(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    def fake_exec(argv: list[str]) -> NoReturn:
        calls.append(argv)
        raise Execed

    monkeypatch.setattr(run_verb, "_exec", fake_exec)
    return calls


def _run(sock: Path) -> tuple[str, float]:
    err = io.StringIO()
    started = time.monotonic()
    with pytest.raises(Execed):
        main(["run", "--scope", "--or-warn", "--", "tmux", "new", "-d"],
             {"LOGOUTD_SOCKET": str(sock)}, io.StringIO(), err)
    return err.getvalue(), time.monotonic() - started


def test_a_daemon_that_never_answers_costs_one_line_and_a_bounded_wait(
        tmp_path: Path, execed: list[list[str]]) -> None:
    path = tmp_path / "api.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(8)  # connects succeed (backlog), nobody ever reads or answers
        err, took = _run(path)
    assert execed == [["tmux", "new", "-d"]]
    assert err == (f"logoutd: tmux will be terminated at logout: logoutd did not answer within "
                   f"{run_verb.OR_WARN_TIMEOUT:g} s ({path}).\n")
    assert took < 3 * run_verb.OR_WARN_TIMEOUT, took  # not the client's default 10 s


def test_no_daemon_costs_one_line(tmp_path: Path, execed: list[list[str]]) -> None:
    err, _ = _run(tmp_path / "missing.sock")
    assert execed == [["tmux", "new", "-d"]]
    assert err.startswith("logoutd: tmux will be terminated at logout: logoutd is not running")
    assert err.count("\n") == 1
