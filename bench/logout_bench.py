"""Logout → empty scope, against `cgroup.kill` of an identical cgroup (docs/performance.md)."""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.harness import cgroups

from bench import cgtree
from bench.procs import ignores_term_and_hup
from bench.world import Daemon, TestUser, World, log


@dataclass
class LogoutResult:
    n: int
    ignore: bool  # the sleepers ignore SIGTERM and SIGHUP
    stop_timeout: float  # SessionStopTimeoutSec= in force
    logoutd: list[float] = field(default_factory=list)  # seconds, leader SIGKILL -> populated 0
    kernel: list[float] = field(default_factory=list)  # seconds, cgroup.kill -> populated 0


def _fill(world: World, cgroup: Path, n: int, ignore: bool) -> list[int]:
    pids = world.children.sleepers(n, ignore)
    cgtree.move(cgroup, pids)
    if ignore:  # the shell must have set its traps and exec'd sleep before we start the clock
        deadline = time.monotonic() + 60
        pending = list(pids)
        while pending:
            pending = [p for p in pending if not ignores_term_and_hup(p)]
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"{len(pending)} SIGTERM-ignorers not ready")
            if pending:
                time.sleep(0.005)
    return pids


def _logoutd_once(world: World, daemon: Daemon, user: TestUser, n: int, ignore: bool,
                  timeout: float) -> float:
    children = world.children
    leader = children.sleeper()
    session = daemon.call("create_session", uid=user.uid, leader=leader, service="bench")["session"]
    scope = world.subtree / session["scope"]
    pids = _fill(world, scope, n, ignore)
    if len(cgroups.procs(scope)) != n + 1:
        raise RuntimeError(f"{scope} holds {len(cgroups.procs(scope))} processes, expected {n + 1}")
    with cgtree.EmptyWatch(scope) as watch:
        t0 = time.perf_counter()
        children.kill(leader, signal.SIGKILL)
        t1 = watch.wait(timeout)
    children.reap([leader, *pids])
    daemon.wait_session_removed(session["id"], 60.0)
    return t1 - t0


def _kernel_once(world: World, index: int, n: int, ignore: bool, timeout: float) -> float:
    cgroup = world.subtree / f"floor-{index}"
    cgroup.mkdir()
    try:
        pids = _fill(world, cgroup, n + 1, ignore)
        with cgtree.EmptyWatch(cgroup) as watch, open(cgroup / "cgroup.kill", "wb", buffering=0) as f:
            t0 = time.perf_counter()
            f.write(b"1")
            t1 = watch.wait(timeout)
        world.children.reap(pids)
    finally:
        cgtree.remove_tree(cgroup)
    return t1 - t0


def run_logout(world: World, daemon: Daemon, user: TestUser, n: int, reps: int,
               ignore: bool = False, stop_timeout: float = 90.0) -> LogoutResult:
    result = LogoutResult(n=n, ignore=ignore, stop_timeout=stop_timeout)
    timeout = (stop_timeout if ignore else 0.0) + 60.0 + n / 100
    what = "SIGTERM/SIGHUP-ignoring sleepers" if ignore else "sleepers"
    log(f"logout -> empty scope: N={n} {what}, {reps} repetitions each (logoutd, kernel)")
    for rep in range(reps):
        order = (0, 1) if rep % 2 == 0 else (1, 0)
        for which in order:
            if which == 0:
                result.logoutd.append(_logoutd_once(world, daemon, user, n, ignore, timeout))
            else:
                result.kernel.append(_kernel_once(world, rep, n, ignore, timeout))
        daemon.check_alive()
        time.sleep(0.05)
    return result
