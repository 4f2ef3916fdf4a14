"""The session leader dies without a PAM close (SIGKILL): the session still ends, its processes
are killed and its scope removed."""

from __future__ import annotations

import signal

import pytest

from tests.integration.harness.checks import assert_in_scope, wait_gone, wait_session_removed
from tests.integration.harness.login import script
from tests.integration.harness.procs import Proc, signal_proc


@pytest.mark.parametrize("via", ["ssh", "su"])
def test_leader_sigkill_ends_session(env, user, pam, daemon, via):
    login = env.login(via, pam, user, script("nohup", "daemon", "stubborn",
                                             extra='echo "PID shell $$"'))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    assert_in_scope(env, session, procs.values())

    leader = Proc.of(session["leader"], "leader")
    assert leader.cgroup() == env.rel(session["scope"]), leader.describe()
    if via == "su":
        assert leader.pid == login.proc.pid
    signal_proc(leader, signal.SIGKILL)
    wait_gone(env, [leader], 5, "leader")

    # Nothing was released through PAM: the leader's exit alone ends the session.
    wait_gone(env, procs.values(), 10, "session processes")
    wait_session_removed(env, daemon, session)
    assert daemon.sessions(user.name) == []
    login.wait(timeout=15)
