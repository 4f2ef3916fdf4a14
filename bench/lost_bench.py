"""Lost kills: N short `su -l` sessions through the hook (`python -m bench.lost_bench [N]`)."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass

from tests.integration.harness.procs import Proc

from bench.world import harness_env

SCRIPT = ('nohup sleep 1000 >/dev/null 2>&1 </dev/null & '
          'echo "JOB $! $(cut -d" " -f22 /proc/$!/stat)"')


@dataclass
class LostResult:
    sessions: int
    survivors: int  # jobs alive after every session ended (a lost kill each)
    seconds: float  # for all the su sessions


def run_lost(n: int = 1000) -> LostResult:
    with harness_env() as env:
        user = env.user()
        daemon = env.daemon()
        su = env.su(env.pam())
        jobs: list[Proc] = []
        t0 = time.monotonic()
        for i in range(n):
            r = su.run(user.name, SCRIPT, timeout=30)
            job = re.search(r"^JOB (\d+) (\d+)$", r.stdout, re.M)
            if r.returncode != 0 or job is None:
                raise RuntimeError(f"su session {i} failed: {r}")
            jobs.append(Proc(int(job[1]), int(job[2]), f"job{i}"))
        seconds = time.monotonic() - t0
        deadline = time.monotonic() + 10  # the kill of the last sessions may still be under way
        while any(p.alive() for p in jobs) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = sum(p.alive() for p in jobs)
        daemon.wait_for(lambda: daemon.sessions() == [], 30, "zero sessions")
        return LostResult(n, survivors, seconds)


if __name__ == "__main__":
    print(run_lost(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
