"""Twenty ssh logins at once are all tracked, and all of them are cleaned up at logout."""

from __future__ import annotations

import time

from tests.integration.harness.checks import assert_in_scope, wait_gone
from tests.integration.harness.login import script
from tests.integration.harness.procs import wait_for

N = 20


def test_parallel_ssh_logins(env, user, pam, daemon):
    sshd = env.sshd(pam)
    logins = [sshd.login(user, script("nohup", extra='echo "PID shell $$"')) for _ in range(N)]
    procs = []
    for login in logins:
        got = login.wait_ready(timeout=60)
        env.track(got.values())
        procs.append(got)

    sessions = daemon.wait_for(lambda: len(daemon.sessions(user.name)) == N and
                               daemon.sessions(user.name), 10, f"{N} sessions")
    assert len({s["id"] for s in sessions}) == N
    assert len({s["scope"] for s in sessions}) == N
    assert all(s["state"] in ("online", "active") for s in sessions), sessions
    by_scope = {env.rel(s["scope"]): s for s in sessions}
    # Each login's processes are in their own session's scope, one login per scope.
    seen = set()
    for got in procs:
        cgroup = got["shell"].cgroup()
        assert cgroup in by_scope, f"{got['shell'].describe()} not in any session scope"
        assert_in_scope(env, by_scope[cgroup], got.values())
        seen.add(cgroup)
    assert len(seen) == N
    users = [u for u in daemon.users() if u["uid"] == user.uid]
    assert len(users) == 1 and sorted(users[0]["sessions"]) == sorted(s["id"] for s in sessions)

    for login in logins:
        login.popen.stdin.close()
    for login in logins:
        assert login.wait(timeout=30) == 0, login.report()

    everything = [p for got in procs for p in got.values()]
    wait_gone(env, everything, 15, f"the processes of {N} sessions")
    daemon.wait_for(lambda: daemon.sessions(user.name) == [], 15, "no sessions left")
    t0 = time.monotonic()
    wait_for(lambda: not env.cgroups_under_user_slice(), 15,
             "no cgroup under user.slice", details=env.describe)
    assert time.monotonic() - t0 < 15
