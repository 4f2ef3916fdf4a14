"""Control characters in PAM items and process names never reach the terminal raw (issue 11):
a session whose tty, rhost, ruser and service hold an OSC title sequence, BEL and CR, created
by root through the real API, then every verb of logoutctl in-process."""

from __future__ import annotations

import json
import re

import pytest

from logoutd.api.client import Client
from logoutd.cli.ctl import VERBS
from logoutd.core.killrecords import EndedProcess, KillEntry
from logoutd.core.leftovers import Leftover
from tests.adapters.conftest import Served, ctl

EVIL = "\x1b]0;pwn\x07\r"
SHOWN = "\\x1b]0;pwn\\a\\r"
# What a terminal must never get from us: C0 but tab and newline, DEL, C1; ESC only inside our
# own SGR colour sequences (ESC [ digits/semicolons m).
RAW = re.compile("[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]|\x1b(?!\\[[0-9;]*m)")


@pytest.fixture
def evil(served: Served) -> dict[str, object]:
    leader = served.run(served.core.world.spawn, 0)
    with Client(served.socket) as c:
        session: dict[str, object] = c.call(
            "create_session", uid=1000, leader=leader.pid, service=f"sshd{EVIL}",
            tty=f"pts/{EVIL}", remote_host=f"evil{EVIL}.example", remote_user=f"ru{EVIL}",
        )["session"]
    served.run(served.core.manager.leftovers.add, [Leftover(
        session=str(session["id"]), user="alice", uid=1000, action="killed", recorded_at=1.0,
        pid=4242, ppid=1, proc_uid=1000, comm=f"co{EVIL}", exe="/usr/bin/x",
        cmdline=f"sleep {EVIL}", start_time=1.0, tty=f"pts/{EVIL}", why=(),
    )])
    for uid, user in ((1000, "alice"), (0, "root")):
        served.run(served.core.manager.kills.add, uid, user, KillEntry(
            1.0, str(session["id"]), f"sshd{EVIL}", f"pts/{EVIL}", "killed", 1,
            (EndedProcess(4242, f"co{EVIL}", f"sleep {EVIL}", 1.0),)))
    return session


READ_ONLY = [
    ["list-sessions"], ["session-status", "c1"], ["show-session", "c1"],
    ["show-session", "c1", "-p", "TTY,RemoteHost,RemoteUser,Service"],
    ["show-session", "c1", "-P", "TTY"], ["show-session", "c1", "--value", "-p", "RemoteHost"],
    ["list-users"], ["user-status", "alice"], ["show-user", "alice"], ["list-units"],
    ["leftovers"], ["leftovers", "--session", "c1"], ["show-config"], ["status"],
    ["kill-history", "alice"], ["login-notice"], ["why-killed"],
]
CHANGING = [["kill-session", "c1", "--signal", "CONT"], ["kill-user", "alice", "--signal", "CONT"],
            ["terminate-session", "c1"], ["terminate-user", "alice"]]


def test_the_evil_items_are_stored_as_given(served: Served, evil: dict[str, object]) -> None:
    """The API keeps the bytes (they are data); JSON output escapes them by itself."""
    assert evil["tty"] == f"pts/{EVIL}" and evil["remote_host"] == f"evil{EVIL}.example"
    rc, out, _ = ctl(served, "--json", "list-sessions")
    assert rc == 0 and "\x1b" not in out and "\\u001b]0;pwn\\u0007\\r" in out
    assert json.loads(out)["sessions"][0]["tty"] == f"pts/{EVIL}"


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "terminal"])
def test_every_verb_escapes_control_characters(served: Served, evil: dict[str, object],
                                               nss: None, tty: bool) -> None:
    seen: set[str] = set()
    for argv in [*READ_ONLY, ["kill-history", "--notice"], *CHANGING]:
        rc, out, err = ctl(served, *argv, tty=tty)
        assert rc == 0, (argv, err)
        for stream in (out, err):
            bad = RAW.search(stream)
            assert bad is None, f"{argv}: raw {bad.group()!r} in {stream!r}"
        seen.add(argv[0])
        if argv[0] in ("list-sessions", "session-status", "show-session", "leftovers",
                       "kill-history"):
            assert SHOWN in out, (argv, out)
    # Every verb that shows a session, a user or a record was run.
    assert seen >= {"list-sessions", "session-status", "show-session", "list-users",
                    "user-status", "show-user", "leftovers"}
    unrun = {"enable-linger", "disable-linger", "run", "stop-unit", "reload", "check-config"}
    assert seen | unrun == set(VERBS)


def test_the_escaped_fields_where_they_are_shown(served: Served, evil: dict[str, object],
                                                 nss: None) -> None:
    out = ctl(served, "list-sessions")[1]
    assert f"pts/{SHOWN}" in out
    status = ctl(served, "session-status", "c1")[1].splitlines()
    assert f"\t     TTY: pts/{SHOWN}" in status
    assert f"\t  Remote: ru{SHOWN}@evil{SHOWN}.example" in status
    assert any(line.startswith(f"\t Service: sshd{SHOWN}; type ") for line in status), status
    props = ctl(served, "show-session", "c1")[1].splitlines()
    for line in (f"TTY=pts/{SHOWN}", f"RemoteHost=evil{SHOWN}.example", f"RemoteUser=ru{SHOWN}",
                 f"Service=sshd{SHOWN}"):
        assert line in props, props
    assert ctl(served, "show-session", "c1", "-P", "TTY")[1] == f"pts/{SHOWN}\n"
    leftovers = ctl(served, "leftovers")[1]
    assert f"sleep {SHOWN}" in leftovers and f"pts/{SHOWN}" in leftovers
