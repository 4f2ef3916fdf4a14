"""Assertions shared by the integration tests (concrete facts: /proc, cgroup dirs, the API),
and the held login most of them start from."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from .bus import PrivateBus
from .daemon import Daemon
from .env import Env
from .login import Login, script
from .pam import PamService
from .procs import Proc, alive, wait_for
from .users import TestUser


def open_held(env: Env, daemon: Daemon, via: str, pam: PamService, user: TestUser, *kinds: str,
              extra: str = "", bus: PrivateBus | None = None
              ) -> tuple[Login, dict[str, Proc], dict[str, Any]]:
    """A held login of `user` (`via` as in Env.login) leaving `kinds` behind, its processes
    tracked; returns the login, its processes and its session (new, and active)."""
    known = {s["id"] for s in daemon.sessions()}
    login = env.login(via, pam, user, script(*kinds, extra=extra), bus=bus)
    procs = login.wait_ready()
    env.track(procs.values())

    def new_session() -> dict[str, Any] | None:
        fresh = [s for s in daemon.sessions(user.name) if s["id"] not in known]
        return fresh[0] if fresh and fresh[0]["state"] == "active" else None

    session = daemon.wait_for(new_session, 10, f"a new session of {user.name}")
    return login, procs, session


def assert_in_scope(env: Env, session: dict[str, Any], procs: Iterable[Proc]) -> None:
    """Every process is alive and its cgroup is exactly the session's scope."""
    assert session["scope"], f"session without scope: {session}"
    expected = env.rel(session["scope"])
    assert env.scope_dir(session["scope"]).is_dir(), f"scope dir missing: {session}"
    for p in procs:
        assert p.alive(), f"{p.describe()} died before logout"
        assert p.cgroup() == expected, f"{p.describe()} is not in {expected}"


def wait_gone(env: Env, procs: Iterable[Proc], timeout: float, what: str = "processes") -> float:
    """Wait until none of `procs` is alive; return the seconds it took."""
    procs = list(procs)
    t0 = time.monotonic()
    wait_for(lambda: not alive(procs), timeout, f"{what} to be gone",
             details=lambda: "alive: " + ", ".join(p.describe() for p in alive(procs))
             + "\n" + env.describe())
    return time.monotonic() - t0


def wait_session_removed(env: Env, daemon: Daemon, session: dict[str, Any],
                         timeout: float = 10.0) -> None:
    """The session is no longer listed and its scope directory is gone."""
    scope = env.scope_dir(session["scope"])
    wait_for(lambda: all(s["id"] != session["id"] for s in daemon.sessions())
             and not scope.exists(), timeout,
             f"session {session['id']} and {scope} to be removed", details=env.describe)


def assert_alive_for(env: Env, procs: Iterable[Proc], seconds: float) -> None:
    """The processes stay alive for `seconds` (used where nothing must be killed)."""
    procs = list(procs)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        dead = [p for p in procs if not p.alive()]
        assert not dead, f"killed although they should survive: {dead}\n{env.describe()}"
        time.sleep(0.1)
