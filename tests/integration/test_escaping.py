"""Control characters in PAM items, command lines and unit commands, through the real daemon
(issue 11): root creates a session whose tty, rhost, ruser and service hold an OSC title
sequence, BEL and CR; every logoutctl verb, as root and as the user, shows them escaped, and the
daemon's log carries none of them raw."""

from __future__ import annotations

import re
import subprocess

from tests.integration.harness.ctl import ctl, ctl_as
from tests.integration.harness.procs import Proc, wait_for

EVIL = "\x1b]0;pwn\x07\r"
SHOWN = "\\x1b]0;pwn\\a\\r"
# C0 but tab and newline, DEL, C1; ESC only inside SGR colour sequences (ESC [ ... m).
RAW = re.compile("[\x00-\x08\x0b-\x1a\x1c-\x1f\x7f-\x9f]|\x1b(?!\\[[0-9;]*m)")


def test_every_output_escapes_pam_items(env, user, daemon):
    leader = subprocess.Popen([f"sleep{EVIL}", "1000"], executable="/usr/bin/sleep",
                              user=user.uid, group=user.gid)
    env.track([Proc.of(leader.pid, "leader")])
    session = daemon.call("create_session", uid=user.uid, leader=leader.pid,
                          service=f"sshd{EVIL}", tty=f"pts/{EVIL}",
                          remote_host=f"evil{EVIL}.example", remote_user=f"ru{EVIL}")["session"]
    sid = session["id"]
    assert session["tty"] == f"pts/{EVIL}"  # data is kept as given; only displays escape it
    # A unit whose command holds the sequence: the daemon logs its command line.
    started = ctl_as(env, user, "run", "--unit", "evil", "--", "/bin/sleep", f"1{EVIL}")
    assert started.rc == 0, started
    assert not RAW.search(started.out + started.err), started

    root_verbs = [
        ["list-sessions"], ["session-status", sid], ["show-session", sid],
        ["show-session", sid, "-P", "TTY"], ["list-users"], ["user-status", user.name],
        ["show-user", user.name], ["list-units"], ["leftovers"], ["status"],
    ]
    for argv in root_verbs:
        for tty in (False, True):
            result = ctl(env, *argv, tty=tty)
            assert result.rc == 0, (argv, result)
            bad = RAW.search(result.out + result.err)
            assert bad is None, f"{argv}: raw {bad.group()!r} in {result.out!r}"
        if argv[0] in ("list-sessions", "session-status", "show-session"):
            assert SHOWN in result.out, (argv, result.out)
    status = ctl(env, "session-status", sid).out
    assert f"\t     TTY: pts/{SHOWN}" in status and f"ru{SHOWN}@evil{SHOWN}.example" in status
    assert f'{leader.pid} "sleep\\x1b]0;pwn\\x07\\x0d" 1000' in status, status  # shell-quoted
    for argv in (["list-sessions"], ["session-status", sid], ["show-session", sid]):
        result = ctl_as(env, user, *argv)
        assert result.rc == 0 and not RAW.search(result.out + result.err), (argv, result)

    assert ctl(env, "terminate-session", sid).rc == 0
    wait_for(lambda: leader.poll() is not None, 5, "the leader to be killed")
    log = daemon.log()
    assert "Started evil.service" in log, daemon.log_tail()
    assert f"1{SHOWN}" in log, daemon.log_tail()
    bad = RAW.search(log)
    assert bad is None, f"raw {bad.group()!r} in the daemon log: {log[bad.start() - 80:bad.end() + 20]!r}"
