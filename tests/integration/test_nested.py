"""su/runuser inside a session create no second session: the hook's create_session is refused
(busy) because the PAM process already runs in a user slice, and the inner processes stay in
the first session's scope (and die with it)."""

from __future__ import annotations

import shlex

import pytest

from tests.integration.harness.checks import assert_in_scope, wait_gone, wait_session_removed
from tests.integration.harness.login import script
from tests.integration.harness.procs import Proc, status_field

INNER = script("nohup", extra='echo "PID innershell $$"')


def _inner_command(how: str, target: str) -> str:
    inner = shlex.quote(INNER)
    if how == "su -":
        return f"su - {target} -c {inner}"
    if how == "su":
        return f"su {target} -c {inner}"
    if how == "runuser -l":  # runuser needs root: go through `su - root` first
        runuser = f"runuser -l {target} -c {inner}"
        return f"su - root -c {shlex.quote(runuser)}"
    raise ValueError(how)


CASES = [
    # (outer login, inner tool, inner target)
    ("ssh", "su -", "same"),
    ("ssh", "su -", "other"),
    ("ssh", "su", "other"),
    ("ssh", "su -", "root"),
    ("ssh", "runuser -l", "other"),
    ("su", "su -", "other"),
    ("runuser", "su -", "other"),
]


@pytest.mark.parametrize(("outer", "how", "target"), CASES,
                         ids=[f"{o}-{h.replace(' ', '')}-{t}" for o, h, t in CASES])
def test_nested_login_joins_outer_session(env, user, user2, pam, daemon, outer, how, target):
    target_name = {"same": user.name, "other": user2.name, "root": "root"}[target]
    login = env.login(outer, pam, user, _inner_command(how, target_name))
    procs = login.wait_ready()
    env.track(procs.values())

    sessions = daemon.sessions()
    assert len(sessions) == 1, f"expected only the outer session: {sessions}"
    session = sessions[0]
    assert session["user"] == user.name, session
    assert session["uid"] == user.uid

    # The inner shell (running as the target) and its job live in the outer scope ...
    assert_in_scope(env, session, procs.values())
    inner_uid = int(status_field(procs["innershell"].pid, "Uid").split()[0])
    assert inner_uid == {"same": user.uid, "other": user2.uid, "root": 0}[target]
    # ... and so does the inner su/runuser itself (the PAM process the hook saw).
    inner_pam = Proc.of(int(status_field(procs["innershell"].pid, "PPid")), "inner su")
    assert inner_pam.cgroup() == env.rel(session["scope"])
    assert session["leader"] != inner_pam.pid
    # The hook did run for the inner login, and the daemon refused it as busy (logind's words).
    assert "Already running in a session" in daemon.log(), daemon.log_tail()

    assert login.logout() == 0, login.report()
    wait_gone(env, procs.values(), 10, "inner processes")
    wait_session_removed(env, daemon, session)
    assert daemon.sessions() == []
