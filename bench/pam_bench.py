"""The PAM hook's added time on session open + close, through a real `su -l USER -c true`.

su always reads the PAM service su-l, so each run happens in a private mount namespace with
our test file bind-mounted over /etc/pam.d/su-l; the machine's PAM files are never touched.
A (without the hook), B (with it) and C (with it for open_session only, `type=open_session`)
alternate, ABC CBA, to cancel the noise of a shared VM.
"""

from __future__ import annotations

import os
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

import cgtree
from procs import which
from world import Daemon, TestUser, World, log

from logoutd.api.client import Client
from logoutd.errors import NoSuchSession
from logoutd.pam.install import install_hook

SYSTEM_PYTHON = "/usr/bin/python3"
PAM_BASE = """\
auth     sufficient pam_rootok.so
account  required   pam_permit.so
session  required   pam_unix.so
"""
# $0: the PAM file, $1: the user. `exec` keeps the process chain as short as a real su.
SU_SCRIPT = 'mount --bind "$0" /etc/pam.d/su-l && exec su -l "$1" -c true'
# A stand-in for the PAM process: runs the hook for open, then close, as pam_exec does (fork,
# exec the script), and appends both times to a file. It is the leader; it exits afterwards.
HOOK_LEADER = """\
import os, sys, time
hook, sock, out = sys.argv[1:4]
env = dict(os.environ)
times = []
for kind in ("open_session", "close_session"):
    env["PAM_TYPE"] = kind
    t0 = time.perf_counter()
    pid = os.posix_spawn(hook, [hook, "--socket", sock], env)
    os.waitpid(pid, 0)
    times.append(time.perf_counter() - t0)
with open(out, "a") as f:
    f.write(" ".join(map(repr, times)) + "\\n")
"""
IDLE_GAP = 0.05  # seconds without any cgroup migration before an "isolated" one


@dataclass
class PamResult:
    runs: int
    without_hook: list[float] = field(default_factory=list)
    with_hook: list[float] = field(default_factory=list)
    open_only: list[float] = field(default_factory=list)  # the hook line with type=open_session
    nofile: tuple[int, int] = (0, 0)  # RLIMIT_NOFILE of su: pam_exec closes every fd up to it
    sessions_created: int = 0
    hook_start: list[float] = field(default_factory=list)  # python3 -IS hook
    bare_start: list[float] = field(default_factory=list)  # python3 -IS -c pass
    hook_bytes: int = 0
    hook_open: list[float] = field(default_factory=list)  # the hook alone, PAM_TYPE=open_session
    hook_close: list[float] = field(default_factory=list)  # PAM_TYPE=close_session
    create_isolated: list[float] = field(default_factory=list)  # create_session, fresh connection
    migrate_isolated: list[float] = field(default_factory=list)  # kernel: one cgroup.procs write


def _timed(world: World, argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    pid = world.children.spawn(argv, env=env)
    status = world.children.wait(pid)
    elapsed = time.perf_counter() - t0
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        raise RuntimeError(f"{' '.join(argv)} failed (wait status {status})")
    return elapsed


def run_pam(world: World, daemon: Daemon, user: TestUser, runs: int, starts: int) -> PamResult:
    hook = world.tmp / "logoutd-pam"
    install_hook(hook)
    without = world.tmp / "pam-without-hook"
    with_hook = world.tmp / "pam-with-hook"
    open_only = world.tmp / "pam-with-hook-open-only"
    without.write_text(PAM_BASE)
    with_hook.write_text(PAM_BASE + f"session  optional   pam_exec.so quiet seteuid {hook} "
                         f"--socket {daemon.socket}\n")
    open_only.write_text(PAM_BASE + f"session  optional   pam_exec.so quiet seteuid type=open_session "
                         f"{hook} --socket {daemon.socket}\n")
    unshare, sh = which("unshare"), which("sh")

    def su(pam_file: Path) -> list[str]:
        return [unshare, "--mount", "--propagation", "private", sh, "-c", SU_SCRIPT,
                str(pam_file), user.name]

    result = PamResult(runs=runs, hook_bytes=hook.stat().st_size,
                       nofile=resource.getrlimit(resource.RLIMIT_NOFILE))
    log(f"su -l {user.name} -c true: {runs} sessions each without the hook, with it, and with "
        "it for open_session only; interleaved")
    created_before = _created(daemon)
    for _ in range(5):  # warm caches (su, PAM modules, the hook's .py) outside the sample
        for pam_file in (without, with_hook, open_only):
            _timed(world, su(pam_file))
    warm_created = _created(daemon) - created_before
    if warm_created != 10:
        raise RuntimeError(f"the hook created {warm_created} sessions in 10 warm-up logins:\n"
                           f"{daemon.log_tail()}")
    created_before = _created(daemon)
    arms = ((without, result.without_hook), (with_hook, result.with_hook),
            (open_only, result.open_only))
    for i in range(runs):
        for pam_file, samples in arms if i % 2 == 0 else reversed(arms):
            samples.append(_timed(world, su(pam_file)))
    result.sessions_created = _created(daemon) - created_before
    _wait_no_sessions(daemon, 60.0)

    log(f"hook start: python3 -IS hook vs python3 -IS -c pass, {starts} each, interleaved")
    env = {"PATH": world.children.env["PATH"]}  # no PAM_TYPE: the hook parses argv and exits 0
    for i in range(starts):
        starts_pair = (([SYSTEM_PYTHON, "-IS", str(hook)], result.hook_start),
                       ([SYSTEM_PYTHON, "-IS", "-c", "pass"], result.bare_start))
        for argv, samples in starts_pair if i % 2 == 0 else reversed(starts_pair):
            samples.append(_timed(world, argv, env))

    log(f"breakdown: hook open/close alone, create_session and one cgroup migration, {starts} each")
    _breakdown(world, daemon, user, hook, starts, result)
    return result


def _breakdown(world: World, daemon: Daemon, user: TestUser, hook: Path, count: int,
               result: PamResult) -> None:
    """Where the hook's time goes: its two runs, the daemon's create, the kernel's migration."""
    children = world.children
    out = world.tmp / "hook-times"
    env = dict(children.env, PAM_USER=user.name, PAM_SERVICE="su-l", PAM_TTY="")
    own = world.subtree / "migrate"
    own.mkdir()
    try:
        for _ in range(count):
            created = _created(daemon)
            leader = children.spawn([SYSTEM_PYTHON, "-IS", "-c", HOOK_LEADER, str(hook),
                                     str(daemon.socket), str(out)], env=env)
            if children.wait(leader) != 0 or _created(daemon) != created + 1:
                raise RuntimeError(f"hook leader failed or created no session:\n{daemon.log_tail()}")

            leader = children.sleeper()
            time.sleep(IDLE_GAP)
            client = Client(daemon.socket, timeout=10.0)
            t0 = time.perf_counter()
            session = client.call("create_session", uid=user.uid, leader=leader, service="bench")
            result.create_isolated.append(time.perf_counter() - t0)
            client.close()
            children.kill(leader)
            children.reap([leader])

            sleeper = children.sleeper()
            time.sleep(IDLE_GAP)
            with open(own / "cgroup.procs", "wb", buffering=0) as f:
                t0 = time.perf_counter()
                f.write(str(sleeper).encode())
                result.migrate_isolated.append(time.perf_counter() - t0)
            children.kill(sleeper)
            children.reap([sleeper])
            _wait_gone(daemon, session["session"]["id"])
        for line in out.read_text().splitlines():
            opened, closed = (float(x) for x in line.split())
            result.hook_open.append(opened)
            result.hook_close.append(closed)
    finally:
        cgtree.wait_empty(own, 10.0)
        own.rmdir()
    _wait_no_sessions(daemon, 60.0)


def _wait_gone(daemon: Daemon, session_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            daemon.call("get_session", id=session_id)
        except NoSuchSession:
            return
        time.sleep(0.005)
    raise TimeoutError(f"session {session_id} not removed")


def _created(daemon: Daemon) -> int:
    return len(re.findall(r"New session \S+ of user", daemon.log_text()))


def _wait_no_sessions(daemon: Daemon, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while daemon.call("status")["sessions"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"su sessions still listed after {timeout:g} s: "
                               f"{daemon.call('list_sessions')}")
        time.sleep(0.05)
