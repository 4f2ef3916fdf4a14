"""N ssh logins at once, with and without the hook (`python -m bench.ssh_bench [N]`)."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from tests.integration.harness.login import Login, script
from tests.integration.harness.sshd import Sshd
from tests.integration.harness.users import TestUser

from bench.world import harness_env


@dataclass
class SshResult:
    n: int
    tracked: int  # sessions the daemon listed while all logins were open
    ready_s: float  # launch -> every login's command ran (with the hook)
    baseline_ready_s: float  # the same without the hook line
    cleaned_s: float  # logout of all -> no session listed and no scope left


def _all_ready(sshd: Sshd, user: TestUser, n: int) -> tuple[list[Login], float]:
    t0 = time.monotonic()
    logins = [sshd.login(user, script("nohup")) for _ in range(n)]
    for login in logins:
        login.wait_ready(timeout=120)
    return logins, time.monotonic() - t0


def _logout(logins: list[Login]) -> None:
    for login in logins:
        assert login.popen.stdin is not None
        login.popen.stdin.close()
    for login in logins:
        login.wait(timeout=60)


def run_ssh(n: int = 50) -> SshResult:
    with harness_env() as env:
        user = env.user()
        daemon = env.daemon()
        hooked = env.sshd(env.pam())
        plain = env.sshd(env.pam(hook=False, suffix="-nohook"))
        plain.run(user, "true")  # warm caches for both
        hooked.run(user, "true")
        logins, baseline = _all_ready(plain, user, n)
        _logout(logins)
        logins, ready = _all_ready(hooked, user, n)
        tracked = len(daemon.sessions(user.name))
        t0 = time.monotonic()
        _logout(logins)
        daemon.wait_for(lambda: not daemon.sessions(user.name), 60, "no session left")
        daemon.wait_for(lambda: not env.cgroups_under_user_slice(), 60, "no scope left")
        return SshResult(n, tracked, ready, baseline, time.monotonic() - t0)


if __name__ == "__main__":
    print(run_ssh(int(sys.argv[1]) if len(sys.argv) > 1 else 50))
