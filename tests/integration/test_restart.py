"""A daemon crash (SIGKILL) and restart loses nothing: the live session is still tracked and its
logout still cleans up — whether the logout happens after the restart or while it was down."""

from __future__ import annotations

import pytest

from tests.integration.harness.checks import assert_in_scope, wait_gone, wait_session_removed
from tests.integration.harness.login import script


@pytest.mark.parametrize("logout_while_down", [False, True], ids=["logout-after", "logout-during"])
@pytest.mark.parametrize("via", ["ssh", "su"])
def test_restart_during_session(env, user, pam, daemon, via, logout_while_down):
    login = env.login(via, pam, user, script("nohup", "stubborn"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    assert_in_scope(env, session, procs.values())

    daemon.kill()
    if logout_while_down:
        # Logout while the daemon is down: the hook's release fails, login still ends.
        assert login.logout() == 0, login.report()
        assert all(p.alive() for p in procs.values())  # nobody is there to kill them yet
    daemon.start()

    if not logout_while_down:
        again = daemon.wait_session(user.name)
        assert again["id"] == session["id"] and again["scope"] == session["scope"], again
        assert again["leader"] == session["leader"], again
        assert_in_scope(env, again, procs.values())
        assert login.logout() == 0, login.report()

    wait_gone(env, procs.values(), 12, "session processes")
    wait_session_removed(env, daemon, session)
    assert daemon.sessions(user.name) == []


def test_sigterm_keeps_sessions(env, user, pam, daemon):
    """Stopping the daemon (SIGTERM) kills no session; after a start the session ends normally."""
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    assert daemon.stop() == 0, daemon.log_tail()
    assert all(p.alive() for p in procs.values())
    assert env.scope_dir(session["scope"]).is_dir()
    daemon.start()
    assert daemon.wait_session(user.name)["id"] == session["id"]
    assert login.logout() == 0
    wait_gone(env, procs.values(), 10)
    wait_session_removed(env, daemon, session)
