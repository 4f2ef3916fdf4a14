"""The "victim login" of the abuse tests: while (or after) one user attacks the daemon, a fresh
ssh login of another user must be tracked within the hook's budget, its `nohup` job killed at
logout, and root's `status` answered on root.sock in under a second."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from .checks import assert_in_scope, wait_gone
from .daemon import Daemon
from .env import Env
from .login import script
from .pam import PamService
from .procs import wait_for
from .users import TestUser

HOOK_BUDGET = 2.0  # the hook's --timeout in the harness' PAM stack (harness/pam.py)
ROOT_STATUS_BOUND = 1.0  # seconds for root's `status` on root.sock, whatever users do
STOP_TIMEOUT = 2.0  # SessionStopTimeoutSec= of the harness' base drop-in


@dataclass
class Victim:
    login_seconds: float  # ssh start → the session's shell printed READY
    root_status_seconds: float
    nohup_gone_seconds: float  # logout → the nohup job gone
    ready_at: float = 0.0  # time.monotonic() when the login was ready

    def describe(self) -> str:
        return (f"login {self.login_seconds * 1000:.0f} ms, tracked; root status "
                f"{self.root_status_seconds * 1000:.1f} ms; nohup gone "
                f"{self.nohup_gone_seconds * 1000:.0f} ms after logout")


def root_call(daemon: Daemon, method: str, timeout: float = 5.0, **params: Any) -> dict[str, Any]:
    """A call on root.sock (the path no user can fill)."""
    from logoutd.api.client import Client

    with Client(daemon.root_socket, timeout=timeout) as c:
        result: dict[str, Any] = c.call(method, **params)
        return result


def root_status_seconds(daemon: Daemon) -> float:
    t0 = time.monotonic()
    status = root_call(daemon, "status", timeout=ROOT_STATUS_BOUND * 5)
    took = time.monotonic() - t0
    assert status["pid"] == daemon.popen.pid  # type: ignore[union-attr]
    assert took < ROOT_STATUS_BOUND, f"root's status took {took:.3f} s"
    return took


def victim_login(env: Env, daemon: Daemon, pam: PamService, user: TestUser,
                 baseline: float | None = None) -> Victim:
    """One login of `user` through the checks above. `baseline`: the login time of the same
    login without the attack; then the extra time must stay within HOOK_BUDGET (a hook that
    timed out would add at least that)."""
    known = {s["id"] for s in root_call(daemon, "list_sessions")["sessions"]}
    t0 = time.monotonic()
    login = env.login("ssh", pam, user, script("nohup", extra='echo "PID shell $$"'))
    procs = login.wait_ready(timeout=30)
    ready_at = time.monotonic()
    took = ready_at - t0
    env.track(procs.values())
    if baseline is not None:
        assert took < baseline + HOOK_BUDGET, (
            f"victim login took {took:.2f} s (baseline {baseline:.2f} s): over the hook's budget")

    def session() -> dict[str, Any] | None:
        fresh = [s for s in root_call(daemon, "list_sessions")["sessions"]
                 if s["user"] == user.name and s["id"] not in known]
        return fresh[0] if fresh else None

    found = wait_for(session, 10, f"the victim session of {user.name}", details=daemon.details)
    assert_in_scope(env, found, procs.values())  # tracked: its shell and job in its scope
    status = root_status_seconds(daemon)
    t1 = time.monotonic()
    assert login.logout() == 0, login.report()
    wait_gone(env, [procs["nohup"]], STOP_TIMEOUT + 3, "the victim's nohup job")
    gone = time.monotonic() - t1
    wait_for(lambda: all(s["id"] != found["id"]
                         for s in root_call(daemon, "list_sessions")["sessions"]),
             10, f"victim session {found['id']} to be removed", details=daemon.details)
    return Victim(took, status, gone, ready_at)
