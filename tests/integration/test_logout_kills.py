"""Logout ends everything the session started: nohup jobs, double-forked setsid daemons that
ignore SIGHUP, stopped jobs (SIGTERM+SIGCONT round), and SIGTERM ignorers (SIGKILL after
SessionStopTimeoutSec=2s)."""

from __future__ import annotations

import re
import time

import pytest

from logoutd.core.killrecords import DESCRIBED, LOGGED
from tests.integration.harness.checks import assert_in_scope, wait_gone, wait_session_removed
from tests.integration.harness.login import script
from tests.integration.harness.procs import status_field

STOP_TIMEOUT = 2.0  # SessionStopTimeoutSec= of the harness' base drop-in


@pytest.mark.parametrize("via", ["ssh", "su"])
def test_logout_kills_all_leftovers(env, user, pam, daemon, via):
    login = env.login(via, pam, user, script("nohup", "daemon", "stopped", "stubborn"))
    procs = login.wait_ready()
    env.track(procs.values())
    assert set(procs) == {"nohup", "daemon", "stopped", "stubborn"}, login.report()

    session = daemon.wait_session(user.name)
    assert session["uid"] == user.uid
    if via == "ssh":
        assert session["service"] == pam.name, session
        assert session["remote_host"] == "127.0.0.1", session
        assert session["type"] == "tty", session
    else:
        assert session["service"] == "su-l", session
        assert session["remote_user"] == "root", session
    assert session["state"] in ("online", "active"), session
    assert session["stop_cause"] is None, session
    assert_in_scope(env, session, procs.values())
    # The daemon really escaped the login's process tree and session.
    daemon_pid = procs["daemon"].pid
    assert status_field(daemon_pid, "NSsid") != status_field(procs["nohup"].pid, "NSsid")
    leader = session["leader"]
    assert isinstance(leader, int) and leader > 1, session
    if via == "su":
        assert leader == login.proc.pid, (session, login.proc)

    t0 = time.monotonic()
    assert login.logout() == 0, login.report()

    # SIGTERM round: the nohup job, the SIGHUP-ignoring daemon and the stopped job go at once.
    wait_gone(env, [procs["nohup"], procs["daemon"], procs["stopped"]],
              timeout=STOP_TIMEOUT + 3, what="nohup job, setsid daemon and stopped job")
    soft = time.monotonic() - t0
    # The SIGTERM ignorer only goes with the SIGKILL after SessionStopTimeoutSec=2s.
    wait_gone(env, [procs["stubborn"]], timeout=STOP_TIMEOUT + 8, what="SIGTERM ignorer")
    hard = time.monotonic() - t0
    assert soft < STOP_TIMEOUT, f"SIGTERM round took {soft:.2f} s after logout"
    assert hard >= STOP_TIMEOUT - 0.3, (
        f"SIGTERM ignorer died {hard:.2f} s after logout, before SessionStopTimeoutSec=2s")

    wait_session_removed(env, daemon, session)
    assert not env.scope_dir(session["scope"]).exists()
    assert daemon.sessions(user.name) == []


@pytest.mark.parametrize("via", ["ssh", "su"])
def test_logout_with_nothing_left_removes_session(env, user, pam, daemon, via):
    """A login that leaves nothing behind: the session and its scope disappear promptly."""
    login = env.login(via, pam, user, script(extra='echo "PID shell $$"'))
    procs = login.wait_ready()
    session = daemon.wait_session(user.name)
    assert_in_scope(env, session, procs.values())
    assert login.logout() == 0, login.report()
    wait_session_removed(env, daemon, session, timeout=5)


def test_a_logout_of_more_processes_than_it_names_signals_them_all(env, user, pam, daemon):
    """The round signals the processes past the first DESCRIBED before it reads /proc for the
    named ones (so they start exiting at once): every one is signalled, once, and counted; the
    stopped ones get their SIGCONT too; the log line names LOGGED and counts the rest."""
    many = DESCRIBED + 30
    extra = (f'for _j in $(seq {many}); do nohup sleep 1003 >/dev/null 2>&1 </dev/null & '
             'echo "PID job$_j $!"; done; '
             'for _j in 1 2 3; do sleep 1004 >/dev/null 2>&1 </dev/null & _p=$!; '
             '_comm $_p sleep; kill -STOP $_p; echo "PID stopped$_j $_p"; done')
    login = env.login("su", pam, user, script(extra=extra))
    procs = login.wait_ready()
    env.track(procs.values())
    assert len(procs) == many + 3, login.report()
    session = daemon.wait_session(user.name)
    deadline = time.monotonic() + 10  # each nohup has exec'd sleep, in the scope
    while [p for p in procs.values() if status_field(p.pid, "Name") != "sleep"]:
        assert time.monotonic() < deadline, login.report()
        time.sleep(0.02)
    assert_in_scope(env, session, procs.values())

    assert login.logout() == 0, login.report()
    wait_gone(env, list(procs.values()), timeout=STOP_TIMEOUT - 0.5,
              what="every job, before the stop timeout (the SIGTERM round, not the SIGKILL)")
    wait_session_removed(env, daemon, session)
    line = re.search(rf"Session {session['id']}: sent SIGTERM, SIGCONT, SIGHUP to (\d+) "
                     r"processes: (.*) and (\d+) more\.", daemon.log())
    assert line, daemon.log()[-3000:]
    count, named, more = int(line[1]), line[2].split(", "), int(line[3])
    assert count == many + 3 and len(named) == LOGGED and more == count - LOGGED
    assert all(re.fullmatch(r"sleep\[\d+\] \d+s", n) for n in named), named
    assert "stop timed out" not in daemon.log()
