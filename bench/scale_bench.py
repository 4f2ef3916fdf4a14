"""10 000 live sessions (--full): create rate, list_sessions latency, RSS, idle CPU, teardown."""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.harness.procs import status_field

from bench import cgtree
from bench.procs import cpu_seconds
from bench.world import Daemon, TestUser, World, log
from logoutd.api.protocol import encode_request

SCALE_CONFIG = "[Login]\n# 10 000 sessions: above the default SessionsMax=8192 (as logind)\n" \
    "SessionsMax=20000\n"


CHECKPOINTS = (100, 1000, 2500, 5000, 7500, 10_000, 20_000, 50_000, 100_000)


@dataclass
class Checkpoint:
    """The daemon with `sessions` live sessions: how its costs grow with them."""

    sessions: int
    create_rate: float  # sessions/s over the block since the previous checkpoint
    create_median: float  # seconds per create_session call in that block
    list_median: float  # list_sessions (Client), median of 3, seconds
    list_bytes: int
    rss_kib: int
    state_files: int  # files in the runtime dir's sessions/


@dataclass
class ScaleResult:
    n: int
    create_seconds: float = 0.0
    create_latency: list[float] = field(default_factory=list)
    list_client: list[float] = field(default_factory=list)  # logoutd.api.client.Client
    list_raw: list[float] = field(default_factory=list)  # a plain socket reader
    list_bytes: int = 0
    rss_kib: int = 0
    hwm_kib: int = 0
    idle_seconds: float = 0.0
    idle_cpu: float = 0.0
    idle_ctxt: int = 0
    end_seconds: float = 0.0
    tree_empty: bool = False
    user_slice_gone_seconds: float | None = None
    curve: list[Checkpoint] = field(default_factory=list)


def check_limits(n: int) -> str | None:
    """Why the machine cannot hold n extra processes, or None."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    threads_max = int(Path("/proc/sys/kernel/threads-max").read_text())
    running = sum(1 for e in os.listdir("/proc") if e.isdigit())
    if running + n + 2000 > min(pid_max, threads_max):
        return f"pid_max={pid_max}, threads-max={threads_max}, {running} processes running"
    return None


def raise_nofile(want: int) -> str:
    """Lift RLIMIT_NOFILE towards want (the hard limit needs CAP_SYS_RESOURCE); what it is now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
        except (PermissionError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    elif soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return f"{soft}/{hard}"


def _raw_list(path: str) -> tuple[float, int]:
    """list_sessions through a bare socket: what the daemon costs, without client-side copying."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(path)
    try:
        t0 = time.perf_counter()
        sock.sendall(encode_request("list_sessions", {}))
        chunks: list[bytes] = []
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("logoutd closed the connection")
            chunks.append(chunk)
            if chunk.endswith(b"\n"):
                break
        data = b"".join(chunks)
        answer = json.loads(data)
        elapsed = time.perf_counter() - t0
    finally:
        sock.close()
    if not answer.get("ok"):
        raise RuntimeError(f"list_sessions failed: {answer}")
    return elapsed, len(data)


def run_scale(world: World, daemon: Daemon, user: TestUser, n: int, idle_seconds: float) -> ScaleResult:
    result = ScaleResult(n=n)
    children = world.children
    log(f"{n} live sessions: spawning {n} leaders")
    leaders = [children.sleeper() for _ in range(n)]

    log(f"{n} live sessions: create_session x {n}")
    client = daemon.client
    marks = [c for c in CHECKPOINTS if c < n] + [n]
    created = 0
    creating = 0.0  # seconds spent in create_session calls, checkpoints excluded
    for mark in marks:
        block = []
        for pid in leaders[created:mark]:
            t0 = time.perf_counter()
            client.call("create_session", uid=user.uid, leader=pid, service="bench")
            block.append(time.perf_counter() - t0)
        block_seconds = sum(block)
        creating += block_seconds
        result.create_latency += block
        created = mark
        result.curve.append(_checkpoint(daemon, mark, block, block_seconds))
        log(f"  {mark} sessions: {result.curve[-1].create_rate:.0f}/s, list "
            f"{result.curve[-1].list_median * 1000:.1f} ms, RSS {result.curve[-1].rss_kib // 1024} MB")
    result.create_seconds = creating
    status = daemon.call("status")
    if status["sessions"] != n:
        raise RuntimeError(f"logoutd has {status['sessions']} sessions, expected {n}")

    log("list_sessions x 10 (logoutd's Client) and x 10 (bare socket)")
    for _ in range(10):
        t0 = time.perf_counter()
        listed = client.call("list_sessions")["sessions"]
        result.list_client.append(time.perf_counter() - t0)
        if len(listed) != n:
            raise RuntimeError(f"list_sessions returned {len(listed)} sessions")
        elapsed, size = _raw_list(str(daemon.socket))
        result.list_raw.append(elapsed)
        result.list_bytes = size

    result.rss_kib = daemon.rss_kib()
    hwm = status_field(daemon.pid, "VmHWM")
    result.hwm_kib = int(hwm.split()[0]) if hwm else 0
    daemon.client.close()  # an idle daemon: no client connection open

    log(f"idle for {idle_seconds:g} s: daemon CPU time and context switches")
    cpu0 = cpu_seconds(daemon.pid)
    ctxt0 = _ctxt(daemon.pid)
    t0 = time.monotonic()
    time.sleep(idle_seconds)
    result.idle_seconds = time.monotonic() - t0
    result.idle_cpu = cpu_seconds(daemon.pid) - cpu0
    result.idle_ctxt = _ctxt(daemon.pid) - ctxt0

    log(f"ending all {n} sessions: SIGKILL every leader")
    t0 = time.perf_counter()
    for pid in leaders:
        children.kill(pid, signal.SIGKILL)
    children.reap(leaders, timeout=120)
    deadline = time.monotonic() + 600
    while daemon.call("status")["sessions"]:
        if time.monotonic() > deadline:
            raise TimeoutError("sessions left 600 s after their leaders died")
        time.sleep(0.01)
    result.end_seconds = time.perf_counter() - t0
    user_slice = world.subtree / "user.slice" / f"user-{user.uid}.slice"
    scopes = [p.name for p in user_slice.glob("session-*.scope")]
    result.tree_empty = not scopes and not cgtree.populated(world.subtree / "user.slice")
    deadline = time.monotonic() + 60
    while user_slice.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if not user_slice.exists():
        result.user_slice_gone_seconds = time.perf_counter() - t0
    daemon.check_alive()
    return result


def _checkpoint(daemon: Daemon, sessions: int, block: list[float], seconds: float) -> Checkpoint:
    lists = []
    size = 0
    for _ in range(3):
        t0 = time.perf_counter()
        listed = daemon.client.call("list_sessions")["sessions"]
        lists.append(time.perf_counter() - t0)
        size = len(json.dumps(listed))
    lists.sort()
    block = sorted(block)
    files = sum(1 for _ in (daemon.dir / "run" / "sessions").iterdir())
    return Checkpoint(sessions, len(block) / seconds if seconds else 0.0, block[len(block) // 2],
                      lists[1], size, daemon.rss_kib(), files)


def _ctxt(pid: int) -> int:
    total = 0
    for name in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"):
        value = status_field(pid, name)
        total += int(value) if value else 0
    return total
