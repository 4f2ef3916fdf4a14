"""The kill decision at logout, row by row (logind's manager_shall_kill), on real sessions.

A session that is not killed stays "closing" with its processes alive (well past
SessionStopTimeoutSec=) and is removed once they end; a killed one loses its processes and is
removed.  The decision's reason is visible in kill_reason (and the daemon log).
"""

from __future__ import annotations

import pytest

from tests.integration.harness.checks import (
    assert_alive_for,
    assert_in_scope,
    wait_gone,
    wait_session_removed,
)
from tests.integration.harness.login import script
from tests.integration.harness.procs import signal_proc

STOP_TIMEOUT = 2.0


def _open(env, pam, via, who, daemon):
    login = env.login(via, pam, who, script("nohup", "stubborn"))
    procs = login.wait_ready()
    env.track(procs.values())
    name = who if isinstance(who, str) else who.name
    session = daemon.wait_session(name)
    assert_in_scope(env, session, procs.values())
    return login, procs, session


def _wait_closing(daemon, session):
    def closing():
        s = daemon.session(session["id"])
        return s if s["state"] == "closing" else None
    return daemon.wait_for(closing, 10, f"session {session['id']} to be closing")


@pytest.mark.parametrize("via", ["ssh", "su"])
def test_no_kill_session_stays_closing_until_processes_end(env, user, pam, start_daemon, via):
    daemon = start_daemon("[Login]\nKillUserProcesses=no\n")
    login, procs, session = _open(env, pam, via, user, daemon)
    assert login.logout() == 0, login.report()

    closing = _wait_closing(daemon, session)
    # Survives well past the stop timeout: nothing is signalled.
    assert_alive_for(env, procs.values(), STOP_TIMEOUT + 1.0)
    closing = daemon.session(session["id"])
    assert closing["state"] == "closing", closing
    assert closing["kill_reason"] and "KillUserProcesses=no" in closing["kill_reason"], closing
    assert "Waiting for processes to exit" in daemon.log()
    assert_in_scope(env, closing, procs.values())
    assert [s["id"] for s in daemon.sessions(user.name)] == [session["id"]]

    # The test ends them (by pid); the empty scope then takes the session with it.
    signal_proc(procs["nohup"], 9)
    wait_gone(env, [procs["nohup"]], 5)
    assert daemon.session(session["id"])["state"] == "closing"
    signal_proc(procs["stubborn"], 9)
    wait_gone(env, procs.values(), 5)
    wait_session_removed(env, daemon, session)


# (id, config with {user}/{other}, who logs in, killed?, words expected in the reason)
ROWS = [
    ("default-user", "", "user", True, "KillUserProcesses"),
    ("default-root", "", "root", False, "root"),
    ("kup-no-user", "KillUserProcesses=no", "user", False, "KillUserProcesses=no"),
    ("kup-no-root", "KillUserProcesses=no", "root", False, "root"),
    ("exclude-user", "KillExcludeUsers={user}", "user", False, "KillExcludeUsers"),
    ("exclude-other-user", "KillExcludeUsers={other}", "user", True, "KillUserProcesses"),
    # A non-empty KillExcludeUsers= without root drops root's implicit exemption.
    ("exclude-other-root", "KillExcludeUsers={other}", "root", True, "KillUserProcesses"),
    ("exclude-root-root", "KillExcludeUsers=root", "root", False, "KillExcludeUsers"),
    # An empty assignment resets the list to unset: root is exempt again.
    ("exclude-empty-root", "KillExcludeUsers={other}\nKillExcludeUsers=", "root", False, "root"),
    ("only-user-kup-no", "KillUserProcesses=no\nKillOnlyUsers={user}", "user", True,
     "KillOnlyUsers"),
    ("only-other-user", "KillOnlyUsers={other}", "user", False, "KillOnlyUsers"),
    ("only-root-root", "KillUserProcesses=no\nKillOnlyUsers=root", "root", False, "root"),
    ("only-root-exclude-other-root", "KillUserProcesses=no\nKillOnlyUsers=root\n"
     "KillExcludeUsers={other}", "root", True, "KillOnlyUsers"),
    ("exclude-beats-only", "KillOnlyUsers={user}\nKillExcludeUsers={user}", "user", False,
     "KillExcludeUsers"),
]


@pytest.mark.parametrize(("config", "who", "killed", "reason"),
                         [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_kill_decision(env, user, user2, pam, start_daemon, config, who, killed, reason):
    text = "[Login]\n" + config.format(user=user.name, other=user2.name) + "\n"
    daemon = start_daemon(text)
    login_as = "root" if who == "root" else user.name
    login, procs, session = _open(env, pam, "su", login_as, daemon)
    assert session["uid"] == (0 if who == "root" else user.uid)
    assert login.logout() == 0, login.report()

    if killed:
        # The SIGTERM ignorer keeps the session closing for SessionStopTimeoutSec=: read the
        # decision meanwhile.
        closing = _wait_closing(daemon, session)
        assert closing["kill_reason"] and reason in closing["kill_reason"], closing
        wait_gone(env, procs.values(), STOP_TIMEOUT + 8)
        wait_session_removed(env, daemon, session)
        assert reason in daemon.log(), f"reason {reason!r} not logged:\n{daemon.log_tail()}"
    else:
        closing = _wait_closing(daemon, session)
        assert_alive_for(env, procs.values(), STOP_TIMEOUT + 1.0)
        closing = daemon.session(session["id"])
        assert closing["state"] == "closing", closing
        assert closing["kill_reason"] and reason in closing["kill_reason"], closing
        for p in procs.values():
            signal_proc(p, 9)
        wait_gone(env, procs.values(), 5)
        wait_session_removed(env, daemon, session)
