"""Two hundred short `su -l` sessions in a row, each leaving a nohup job: no kill is lost."""

from __future__ import annotations

import re
import time

from tests.integration.harness.checks import wait_gone
from tests.integration.harness.procs import Proc

N = 200
# Prints the job's pid with its start time (it may already be gone when the test reads it),
# and the shell's own cgroup (the session scope).
SCRIPT = ('nohup sleep 1000 >/dev/null 2>&1 </dev/null & '
          'echo "JOB $! $(cut -d" " -f22 /proc/$!/stat)"; echo "CG $(grep ^0:: /proc/self/cgroup)"')


def test_many_sequential_su_sessions(env, user, pam, daemon):
    su = env.su(pam)
    jobs: list[Proc] = []
    scopes: list[str] = []
    t0 = time.monotonic()
    for i in range(N):
        r = su.run(user.name, SCRIPT, timeout=30)
        assert r.returncode == 0, (i, r)
        job = re.search(r"^JOB (\d+) (\d+)$", r.stdout, re.M)
        cg = re.search(r"^CG 0::(\S+)$", r.stdout, re.M)
        assert job and cg, (i, r)
        proc = Proc(int(job[1]), int(job[2]), f"job{i}")
        jobs.append(proc)
        env.track([proc])
        scopes.append(cg[1])
    elapsed = time.monotonic() - t0

    prefix = env.rel(f"user.slice/user-{user.uid}.slice/session-")
    outside = [(i, s) for i, s in enumerate(scopes)
               if not (s.startswith(prefix) and s.endswith(".scope"))]
    assert not outside, f"sessions not in their own scope: {outside[:10]}"
    assert len(set(scopes)) == N, f"only {len(set(scopes))} distinct scopes for {N} sessions"

    wait_gone(env, jobs, 15, f"the nohup jobs of {N} su sessions")
    daemon.wait_for(lambda: daemon.sessions() == [], 15, "zero sessions")
    daemon.wait_for(lambda: not any(p.name.endswith(".scope")
                                    for p in env.cgroups_under_user_slice()),
                    10, "no scope left")
    print(f"{N} su -l sessions in {elapsed:.1f} s")
