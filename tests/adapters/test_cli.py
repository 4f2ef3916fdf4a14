"""logoutctl in-process over the fake-backed server: parsing, dispatch, layouts, colour, errors,
and the bash completion (no root needed; tests/integration runs every verb for real)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from logoutd.cli import resolve
from logoutd.cli.ctl import VERBS, main
from logoutd.cli.output import format_relative
from logoutd.errors import InvalidArgument, NoSuchUser
from tests.adapters.conftest import Served, ctl, open_session

REPO = Path(__file__).resolve().parents[2]


# -- words --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("word", "number"), [
    ("SIGTERM", 15), ("TERM", 15), ("term", 15), ("15", 15), ("sigkill", 9), ("HUP", 1),
    ("RTMIN", signal.SIGRTMIN), ("SIGRTMIN+2", signal.SIGRTMIN + 2),
    ("RTMAX-1", signal.SIGRTMAX - 1), (str(signal.NSIG - 1), signal.NSIG - 1),
])
def test_signal_names_and_numbers(word: str, number: int) -> None:
    assert resolve.signal_number(word) == number


@pytest.mark.parametrize("word", ["0", "65", "FOO", "SIG", "-9", "RTMIN+99", "RTMIN+x", ""])
def test_invalid_signals(word: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^Invalid signal '.*'\.$"):
        resolve.signal_number(word)


def test_users_by_name_uid_or_self(nss: None) -> None:
    assert resolve.user("alice") == resolve.user("1000") == 1000
    assert resolve.user("") is resolve.user("self") is resolve.user("auto") is None
    assert resolve.user("4242") == 4242  # not in NSS: the daemon says whether it is logged in
    for word in ("mallory", "-1", "65535", "4294967295", "99999999999"):
        with pytest.raises(NoSuchUser, match=f"^No user '{word}' known.$"):
            resolve.user(word)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "now"), (0.0005, "500us ago"), (0.25, "250ms ago"), (38, "38s ago"),
    (61, "1min 1s ago"), (300, "5min ago"), (3725, "1h 2min ago"), (6 * 3600 + 5, "6h ago"),
    (25 * 3600, "1 day 1h ago"), (3 * 86400, "3 days ago"), (8 * 86400, "1 weeks 1 days ago"),
    (-90, "1min 30s left"),
])
def test_relative_timestamps_as_systemd(seconds: float, text: str) -> None:
    assert format_relative(1000.0, now=1000.0 + seconds) == text


# -- dispatch -----------------------------------------------------------------------------------


def test_help_version_and_usage_errors(served: Served) -> None:
    rc, out, _ = ctl(served, "--help")
    assert rc == 0 and out == ctl(served, "help")[1] == ctl(served, "-h", "status")[1]
    for verb in VERBS.values():
        assert f"  {verb.name} {verb.usage}".rstrip() in out, verb.name
    assert ctl(served, "--version")[1].startswith("logoutctl ")
    assert ctl(served, "--signal", "help")[1].splitlines()[14] == "15 SIGTERM"
    for argv, message in [
        (["nope"], "Unknown command verb 'nope'; 'logoutctl --help' lists them.\n"),
        (["lsit-sessions"], "Unknown command verb 'lsit-sessions' (did you mean "
                            "'list-sessions'?); 'logoutctl --help' lists them.\n"),
        (["status", "x"], "Too many arguments for 'status'.\n"),
        (["kill-user"], "Too few arguments for 'kill-user' (usage: kill-user USER…).\n"),
        (["--nope"], "Unrecognized arguments: --nope.\n"),
        (["list-sessions", "-p"], "Argument -p/--property: expected one argument.\n"),
    ]:
        assert ctl(served, *argv) == (2, "", message), argv


def test_default_verb_and_options_anywhere(served: Served) -> None:
    open_session(served)
    default = ctl(served)
    assert default == ctl(served, "list-sessions") and default[0] == 0
    assert ctl(served, "--no-legend") == ctl(served, "list-sessions", "--no-legend")
    # SEAT (4 wide) and TTY (3 wide) are empty: STATE follows them.
    assert ctl(served, "--no-legend", "--no-pager")[1] == "     c1 1000 alice" + " " * 10 + "active\n"


def test_sessions_sort_as_strings_like_loginctl(served: Served) -> None:
    for _ in range(10):
        open_session(served)
    ids = [line.split()[0] for line in ctl(served, "--no-legend")[1].splitlines()]
    assert ids == sorted(ids) and ids[:3] == ["c1", "c10", "c2"]
    assert ctl(served)[1].endswith("\n10 sessions listed.\n")


def test_session_status_layout(served: Served) -> None:
    session = open_session(served)
    rc, out, _ = ctl(served, "session-status", str(session["id"]))
    lines = out.splitlines()
    assert rc == 0 and lines[0] == "c1 - alice (1000)"
    assert lines[1].startswith("\t   Since: ") and lines[1].endswith(" ago")
    assert lines[2].startswith(f"\t  Leader: {session['leader']}")  # a fake pid: no comm, no tree
    assert lines[3:] == ["\t Service: sshd; type unspecified; class background",
                         "\t   State: active", "\t    Unit: session-c1.scope"]


def test_show_properties(served: Served, nss: None) -> None:
    open_session(served)
    rc, out, _ = ctl(served, "show-session", "c1")
    props = dict(line.split("=", 1) for line in out.splitlines())
    assert rc == 0 and props["Id"] == "c1" and props["Remote"] == "no" and "TTY" not in props
    assert ctl(served, "show-session", "c1", "-P", "Name", "-P", "User")[1] == "1000\nalice\n"
    assert ctl(served, "show-user", "alice", "-p", "Sessions,Linger")[1] == \
        "Sessions=c1\nLinger=no\n"
    manager = ctl(served, "show-session")[1].splitlines()
    assert manager[:2] == ["KillUserProcesses=yes", "UserStopDelayUSec=10s"]
    assert "NCurrentSessions=1" in manager and "KillExcludeUsers=" not in manager
    assert "KillExcludeUsers=" in ctl(served, "show-session", "-a")[1].splitlines()
    assert ctl(served, "show-user", "-P", "SessionsMax") == (0, "8192\n", "")


def test_colour_only_on_a_terminal_and_never_with_no_color(served: Served) -> None:
    open_session(served)
    assert ctl(served, tty=True)[1].startswith("\x1b[0;4mSESSION")
    for environ in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        assert "\x1b" not in ctl(served, tty=True, **environ)[1]
    assert "\x1b" not in ctl(served)[1]
    rc, _, err = ctl(served, "session-status", "nope", tty=True)
    assert rc == 5 and err == "\x1b[0;1;31mNo session 'nope' known.\x1b[0m\n"


def test_not_running(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    rc = main(["status"], {"LOGOUTD_SOCKET": str(tmp_path / "api.sock")}, out, err)
    assert rc == 10 and err.getvalue() == (
        f"logoutd is not running (no socket at {tmp_path}/api.sock: No such file or directory).\n")
    for argv in (["run", "true"], ["--no-legend", "run", "ls", "-la", "--bogus"]):
        out, err = io.StringIO(), io.StringIO()
        assert main(argv, {"LOGOUTD_SOCKET": str(tmp_path / "x")}, out, err) == 10, argv
        assert err.getvalue().startswith("logoutd is not running") and out.getvalue() == ""


# -- bash completion ------------------------------------------------------------------------------


def _complete(served: Served, line: str) -> list[str]:
    """COMPREPLY for `line` (the cursor at its end) from contrib/bash-completion/logoutctl."""
    script = f"""
        logoutctl() {{ {sys.executable} -m logoutd.cli.ctl "$@"; }}
        compopt() {{ :; }}
        source {REPO}/contrib/bash-completion/logoutctl
        COMP_WORDS=({line}); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 ))
        [[ "{line}" == *" " ]] && {{ COMP_WORDS+=(""); COMP_CWORD=$((COMP_CWORD + 1)); }}
        _logoutctl
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    env = {**os.environ, "LOGOUTD_SOCKET": str(served.socket),
           "PYTHONPATH": str(REPO / "src")}
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env,
                            timeout=30, check=True)
    return [w for w in result.stdout.splitlines() if w]


def test_bash_completion(served: Served) -> None:
    open_session(served)
    open_session(served, uid=1001)
    assert {"list-sessions", "session-status", "enable-linger", "show-config"} <= set(
        _complete(served, "logoutctl "))
    assert _complete(served, "logoutctl session-st") == ["session-status"]
    assert _complete(served, "logoutctl kill-session ") == ["c1", "c2"]
    assert _complete(served, "logoutctl --no-legend terminate-session c") == ["c1", "c2"]
    assert _complete(served, "logoutctl user-status ") == ["alice", "bob"]
    assert _complete(served, "logoutctl kill-session --kill-whom ") == ["leader", "all"]
    assert "TERM" in _complete(served, "logoutctl kill-user --signal ")
    assert "Login.KillUserProcesses" in _complete(served, "logoutctl show-config ")
    assert _complete(served, "logoutctl --no-l") == ["--no-legend"]
