"""Issue 11's attacks by an ordinary user in a real ssh login, and what each does to another
user's login: the victim's ssh login time, whether it was tracked (its shell in a session
scope), whether its `nohup` job died at logout, root's `status` latency, and the daemon's RSS
before, at the peak and after. Runs against the tree it lives in (for before/after figures,
run it from a checkout of each); prints one table and, with --json, one document.

    .venv/bin/python bench/attack_bench.py [--hold S] [--json]

Every attack is bounded by its own script (counts and a hold time); the world (users, sshd,
daemon, cgroup subtree) is removed at the end, processes first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

if not __package__:  # `python bench/attack_bench.py`: bench/ and tests/ as the checkout's packages
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from tests.integration.harness.ctl import ctl_words
from tests.integration.harness.daemon import Daemon
from tests.integration.harness.login import script
from tests.integration.harness.procs import cgroup_of, kill_uid
from tests.integration.harness.sshd import Sshd
from tests.integration.harness.users import TestUser

from bench.world import harness_env, log
from logoutd.api.client import Client
from logoutd.errors import LogoutdError

# The attacker's side: stdlib only, run by the attacker's own python3 inside its ssh login.
ATTACK = r'''
import os, resource, socket, subprocess, sys, threading, time
mode, sock_path, flag, hold = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
end = time.monotonic() + hold

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    s.connect(sock_path)
    return s

def armed():
    open(flag, "w").close()

def hold_until_end():
    while time.monotonic() < end:
        time.sleep(0.2)

if mode == "fifo":
    runtime, ctl = sys.argv[5], sys.argv[6:]
    os.makedirs(f"{runtime}/logoutd", exist_ok=True)
    path = f"{runtime}/logoutd/trap.service.log"
    if not os.path.exists(path):
        os.mkfifo(path)
    child = subprocess.Popen([*ctl, "run", "--unit", "trap", "--", "sleep", "100"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    armed()
    hold_until_end()
    # Let a blocked child go: open the FIFO for reading without blocking.
    with __import__("contextlib").suppress(OSError):
        os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
    child.kill()
elif mode == "fds":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    per, procs = int(sys.argv[5]), int(sys.argv[6])
    kids = []
    for _ in range(procs):
        pid = os.fork()
        if pid == 0:
            held = []
            for _ in range(per):
                try:
                    held.append(conn())
                except OSError:
                    time.sleep(0.001)
                if time.monotonic() > end:
                    break
            hold_until_end()
            os._exit(0)
        kids.append(pid)
    time.sleep(min(hold / 3, 10))
    armed()
    for pid in kids:
        os.waitpid(pid, 0)
elif mode == "mem":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    idle, half, slow = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
    held = []
    for _ in range(idle):
        with __import__("contextlib").suppress(OSError):
            held.append(conn())
    chunk = b"x" * (64 * 1024 - 1)
    for _ in range(half):
        with __import__("contextlib").suppress(OSError):
            s = conn()
            s.sendall(chunk)
            held.append(s)
    slowpokes = []
    for _ in range(slow):
        with __import__("contextlib").suppress(OSError):
            slowpokes.append(conn())
    armed()
    while time.monotonic() < end:
        for s in slowpokes:
            with __import__("contextlib").suppress(OSError):
                s.send(b"{")
        time.sleep(1.0)
elif mode == "deep":
    lines = 0
    for _ in range(int(sys.argv[5])):
        with __import__("contextlib").suppress(OSError):
            s = conn()
            s.sendall(b"[" * 60000 + b"\n")
            answer = s.recv(65536)
            lines += bool(answer)
            s.close()
    print(f"DEEP answered {lines}", flush=True)
    armed()
    hold_until_end()
'''

MODES = ("fifo", "fds", "mem", "deep")


@dataclass
class Figures:
    attack: str
    victim_login_s: float | None  # ssh launch -> the victim's script ran
    tracked: bool  # the victim's nohup job was in a session scope
    killed_at_logout: bool  # ... and gone after the victim's logout
    status_s: float | None  # root's status call, during the attack (None: no answer in 10 s)
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float  # attack over, 5 s later
    log_growth_kb: float  # daemon log bytes written during the attack
    fds_peak: int = 0  # the daemon's open fds at the peak
    note: str = ""


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def root_client(daemon: Daemon) -> Client:
    root_socket = getattr(daemon, "root_socket", None)  # absent before issue 11
    path = root_socket if root_socket is not None and Path(root_socket).exists() else daemon.socket
    return Client(path, timeout=10)


def status_latency(daemon: Daemon) -> float | None:
    t0 = time.monotonic()
    try:
        with root_client(daemon) as c:
            c.call("status")
    except LogoutdError:
        return None
    return time.monotonic() - t0


def victim_login(sshd: Sshd, victim: TestUser) -> tuple[float | None, bool, bool]:
    t0 = time.monotonic()
    login = sshd.login(victim, script("nohup"))
    try:
        procs = login.wait_ready(timeout=30)
    except AssertionError:
        login.kill()
        return None, False, False
    took = time.monotonic() - t0
    job = procs["nohup"]
    tracked = "/session-" in (cgroup_of(job.pid) or "")
    login.logout()
    deadline = time.monotonic() + 10
    while job.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    killed = not job.alive()
    kill_uid(victim.uid)
    return took, tracked, killed


def wait_answering(daemon: Daemon, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status_latency(daemon) is not None:
            return
        time.sleep(0.5)


def run_attack(mode: str, hold: float, daemon: Daemon, sshd: Sshd, attacker: TestUser,
               victim: TestUser, attack_path: Path, ctl: str) -> Figures:
    assert daemon.popen is not None
    pid = daemon.popen.pid
    flag = attacker.home / "armed"
    flag.unlink(missing_ok=True)
    runtime = daemon.user_runtime_root / str(attacker.uid)
    args = {"fifo": f"{runtime} {ctl}", "fds": "7000 3", "mem": "3000 2000 300",
            "deep": "50"}[mode]
    before = rss_mb(pid)
    log_before = daemon.log_path.stat().st_size
    extra = (f"/usr/bin/python3 {attack_path} {mode} {daemon.socket} {flag} {hold} {args} & "
             f"for ((_j = 0; _j < 1200; _j++)); do [ -e {flag} ] && break; sleep 0.05; done")
    attack = sshd.login(attacker, script(extra=extra))
    note = ""
    try:
        attack.wait_ready(timeout=90)
        peak, fds = rss_mb(pid), fd_count(pid)
        status = status_latency(daemon)
        took, tracked, killed = victim_login(sshd, victim)
        peak, fds = max(peak, rss_mb(pid)), max(fds, fd_count(pid))
        note = " ".join(line for line in attack.lines if line.startswith("DEEP"))
    finally:
        attack.kill()
        kill_uid(attacker.uid)
    wait_answering(daemon)
    time.sleep(5)
    after = rss_mb(pid)
    growth = (daemon.log_path.stat().st_size - log_before) / 1024
    return Figures(mode, took, tracked, killed, status, before, peak, after, growth, fds, note)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hold", type=float, default=20.0, help="seconds each attack holds")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=MODES, action="append")
    args = parser.parse_args(argv)
    results: list[Figures] = []
    with harness_env() as env:
        attacker, victim = env.user(), env.user()
        daemon = env.daemon()
        sshd = env.sshd(env.pam())
        attack_path = env.tmp / "attack.py"
        attack_path.write_text(ATTACK)
        attack_path.chmod(0o644)
        ctl = f"env {ctl_words(env)}"
        victim_login(sshd, victim)  # warm caches
        took, tracked, killed = victim_login(sshd, victim)
        assert daemon.popen is not None
        rss = rss_mb(daemon.popen.pid)
        results.append(Figures("none", took, tracked, killed, status_latency(daemon), rss, rss,
                               rss, 0.0, fd_count(daemon.popen.pid)))
        for mode in args.only or MODES:
            log(f"attack {mode} (hold {args.hold:g} s)")
            results.append(run_attack(mode, args.hold, daemon, sshd, attacker, victim,
                                      attack_path, ctl))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return 0
    print(f"{'attack':8} {'victim login':>12} {'tracked':>8} {'killed':>7} {'status':>8} "
          f"{'RSS before':>10} {'peak':>7} {'after':>7} {'log KB':>8} {'fds':>6}")
    for r in results:
        login = f"{r.victim_login_s:.2f} s" if r.victim_login_s is not None else "failed"
        status = f"{r.status_s * 1000:.0f} ms" if r.status_s is not None else "none"
        print(f"{r.attack:8} {login:>12} {r.tracked!s:>8} {r.killed_at_logout!s:>7} "
              f"{status:>8} {r.rss_before_mb:>8.1f}MB {r.rss_peak_mb:>5.1f}MB "
              f"{r.rss_after_mb:>5.1f}MB {r.log_growth_kb:>8.0f} {r.fds_peak:>6} {r.note}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
