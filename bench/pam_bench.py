"""su -l open+close: no module, the hook, the hook at open only, pam_systemd → login1 (see docs)."""

from __future__ import annotations

import os
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import cgtree
from bench.procs import which
from bench.world import Daemon, TestUser, World, log
from logoutd.api.client import Client
from logoutd.pam.install import install_hook

SYSTEM_PYTHON = "/usr/bin/python3"
PAM_BASE = """\
auth     sufficient pam_rootok.so
account  required   pam_permit.so
session  required   pam_unix.so
"""
PAM_LOGIN1 = PAM_BASE + "session  required   pam_systemd.so\n"
# Inside the private mount namespace only: pam_systemd talks to logind only if this exists.
SEATS_PREP = ("mount -t tmpfs -o mode=0755 logoutd-bench /run/systemd && "
              "mkdir /run/systemd/seats && ")
RUN_SYSTEMD = Path("/run/systemd")
SEATS = RUN_SYSTEMD / "seats"
PAM_DIRS = ("/lib/x86_64-linux-gnu/security", "/usr/lib/x86_64-linux-gnu/security", "/lib/security",
            "/usr/lib/security", "/lib/aarch64-linux-gnu/security", "/usr/lib/aarch64-linux-gnu/security")
# $0: the PAM file, $1: the user. `exec` keeps the process chain as short as a real su.
SU_SCRIPT = 'mount --bind "$0" /etc/pam.d/su-l && exec su -l "$1" -c true'
# One PAM handle per stack in one process, as su/sshd use it: pam_start_confdir (our own
# service files, no bind mount), then pam_open_session and pam_close_session, each timed, and
# pam_end. "base" is pam_unix alone, "login1" pam_unix + pam_systemd; argv[4] says which runs
# first. The process is the session's leader (pam_systemd sends pid 0); one session per
# process, as in su. It appends "base_open base_close login1_open login1_close" to argv[3].
PAM_DRIVER = """\
import ctypes, sys, time
confdir, user, out, order = sys.argv[1:5]
pam = ctypes.CDLL("libpam.so.0")
CONV = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_void_p)
class Conv(ctypes.Structure):
    _fields_ = [("conv", CONV), ("appdata_ptr", ctypes.c_void_p)]
conv = Conv(CONV(lambda n, msg, resp, data: 19), None)  # PAM_CONV_ERR: nothing to ask
handle = ctypes.c_void_p
pam.pam_start_confdir.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Conv),
                                  ctypes.c_char_p, ctypes.POINTER(handle)]
for name in ("pam_open_session", "pam_close_session", "pam_end"):
    getattr(pam, name).argtypes = [handle, ctypes.c_int]
pam.pam_getenv.argtypes = [handle, ctypes.c_char_p]
pam.pam_getenv.restype = ctypes.c_char_p
pam.pam_strerror.argtypes = [handle, ctypes.c_int]
pam.pam_strerror.restype = ctypes.c_char_p
def run(stack):
    h = handle()
    rc = pam.pam_start_confdir(f"logoutd-bench-{stack}".encode(), user.encode(),
                               ctypes.byref(conv), confdir.encode(), ctypes.byref(h))
    if rc != 0:
        sys.exit(f"pam_start_confdir({stack}): {rc}")
    t0 = time.perf_counter()
    rc = pam.pam_open_session(h, 0)
    t1 = time.perf_counter()
    if rc != 0:
        sys.exit(f"pam_open_session({stack}): {pam.pam_strerror(h, rc)}")
    if stack == "login1" and not pam.pam_getenv(h, b"XDG_SESSION_ID"):
        sys.exit("pam_systemd set no XDG_SESSION_ID: no session was created")
    t2 = time.perf_counter()
    rc = pam.pam_close_session(h, 0)
    t3 = time.perf_counter()
    if rc != 0:
        sys.exit(f"pam_close_session({stack}): {pam.pam_strerror(h, rc)}")
    pam.pam_end(h, 0)
    return t1 - t0, t3 - t2
stacks = ("base", "login1") if order == "base-first" else ("login1", "base")
times = {stack: run(stack) for stack in stacks}
with open(out, "a") as f:
    f.write(" ".join(repr(t) for stack in ("base", "login1") for t in times[stack]) + "\\n")
"""
# A stand-in for the PAM process: runs the hook for open, then close, as pam_exec does (fork,
# exec the script), and appends both times to a file. It is the leader; it exits afterwards.
HOOK_LEADER = """\
import os, sys, time
hook, run, out = sys.argv[1:4]
env = dict(os.environ)
times = []
for kind in ("open_session", "close_session"):
    env["PAM_TYPE"] = kind
    t0 = time.perf_counter()
    pid = os.posix_spawn(hook, [hook, "--runtime-dir", run], env)
    os.waitpid(pid, 0)
    times.append(time.perf_counter() - t0)
with open(out, "a") as f:
    f.write(" ".join(map(repr, times)) + "\\n")
"""
# Seconds without a cgroup migration by the bench before each timed su, pam_systemd-alone run
# and "isolated" one. A write to cgroup.procs takes cgroup_threadgroup_rwsem for writing, which
# waits for an RCU grace period (6-10 ms here) unless another migration happened within the
# last few ms: back to back, each su's move would be warmed by its neighbour's, and D (one move,
# nothing else slow) would flip between ~0.1 ms and ~10 ms with the order of the arms.
IDLE_GAP = 0.05


@dataclass
class PamResult:
    runs: int
    without_hook: list[float] = field(default_factory=list)
    with_hook: list[float] = field(default_factory=list)
    open_only: list[float] = field(default_factory=list)  # the hook line with type=open_session
    login1: list[float] = field(default_factory=list)  # D: stock pam_systemd -> logoutd --dbus
    login1_skip: str | None = None  # why D was not run
    seats_tmpfs: bool = False  # the machine had no /run/systemd/seats: a tmpfs in each namespace
    login1_created: int = 0  # CreateSession calls that made a session during the D runs
    nofile: tuple[int, int] = (0, 0)  # RLIMIT_NOFILE of su: pam_exec closes every fd up to it
    sessions_created: int = 0
    hook_start: list[float] = field(default_factory=list)  # python3 -IS hook
    bare_start: list[float] = field(default_factory=list)  # python3 -IS -c pass
    hook_bytes: int = 0
    hook_open: list[float] = field(default_factory=list)  # the hook alone, PAM_TYPE=open_session
    # The same requests inside the daemon (bench/daemon_probe.py): its handler, and its move.
    hook_open_handler: list[float] = field(default_factory=list)
    hook_open_move: list[float] = field(default_factory=list)
    hook_close: list[float] = field(default_factory=list)  # PAM_TYPE=close_session
    create_isolated: list[float] = field(default_factory=list)  # create_session, fresh connection
    migrate_isolated: list[float] = field(default_factory=list)  # kernel: one cgroup.procs write
    # One PAM handle (ctypes on libpam): pam_unix alone, then with pam_systemd.
    base_open: list[float] = field(default_factory=list)
    base_close: list[float] = field(default_factory=list)
    login1_open: list[float] = field(default_factory=list)
    login1_close: list[float] = field(default_factory=list)
    # Inside the daemon (bench/daemon_probe.py), during the su runs: the whole handler of a
    # session start and the cgroup.procs write(s) and mkdir(s) within it.
    daemon_login1: list[float] = field(default_factory=list)  # D-Bus CreateSession handler
    daemon_login1_creds: list[float] = field(default_factory=list)  # GetConnectionCredentials
    daemon_login1_core: list[float] = field(default_factory=list)  # the Service call in it
    daemon_login1_move: list[float] = field(default_factory=list)
    daemon_login1_mkdir: list[float] = field(default_factory=list)
    daemon_login1_rest: list[float] = field(default_factory=list)  # handler minus its move
    daemon_driver_login1: list[float] = field(default_factory=list)  # the handler, driver runs
    daemon_api: list[float] = field(default_factory=list)  # socket create_session (the hook)
    daemon_api_move: list[float] = field(default_factory=list)


def _timed(world: World, argv: list[str], env: dict[str, str] | None = None,
           stderr: Path | None = None) -> float:
    t0 = time.perf_counter()
    pid = world.children.spawn(argv, env=env, stderr=stderr)
    status = world.children.wait(pid)
    elapsed = time.perf_counter() - t0
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        tail = ""
        if stderr is not None and stderr.exists():
            tail = ":\n" + "\n".join(stderr.read_text(errors="replace").splitlines()[-10:])
        raise RuntimeError(f"{' '.join(argv)} failed (wait status {status}){tail}")
    return elapsed


def login1_unavailable(daemon: Daemon) -> str | None:
    """None if the D arm (stock pam_systemd -> this daemon's login1) can run, else why not."""
    if daemon.bus is None:
        return "the daemon was started without --dbus"
    if not any(Path(d, "pam_systemd.so").exists() for d in PAM_DIRS):
        return "pam_systemd.so is not installed (libpam-systemd)"
    if not SEATS.is_dir() and not RUN_SYSTEMD.is_dir():
        # A tmpfs would be mounted on it inside the namespace; creating it on the host is not ours.
        return f"neither {SEATS} nor {RUN_SYSTEMD} exists"
    return None


def run_pam(world: World, daemon: Daemon, user: TestUser, runs: int, starts: int) -> PamResult:
    hook = world.tmp / "logoutd-pam"
    install_hook(hook)
    without = world.tmp / "pam-without-hook"
    with_hook = world.tmp / "pam-with-hook"
    open_only = world.tmp / "pam-with-hook-open-only"
    login1 = world.tmp / "pam-with-pam-systemd"
    without.write_text(PAM_BASE)
    # The documented line: the hook talks to RUNTIME_DIR/root.sock (and, if the daemon did not
    # answer, would track the login in the bench's subtree, named in RUNTIME_DIR/cgroup-root).
    with_hook.write_text(PAM_BASE + f"session  optional   pam_exec.so quiet seteuid {hook} "
                         f"--runtime-dir {daemon.runtime_dir}\n")
    open_only.write_text(PAM_BASE + f"session  optional   pam_exec.so quiet seteuid type=open_session "
                         f"{hook} --runtime-dir {daemon.runtime_dir}\n")
    login1.write_text(PAM_LOGIN1)
    unshare, sh = which("unshare"), which("sh")
    result = PamResult(runs=runs, hook_bytes=hook.stat().st_size,
                       nofile=resource.getrlimit(resource.RLIMIT_NOFILE),
                       login1_skip=login1_unavailable(daemon))
    with_login1 = result.login1_skip is None
    result.seats_tmpfs = with_login1 and not SEATS.is_dir()
    prep = SEATS_PREP if result.seats_tmpfs else ""
    env = dict(world.children.env)
    if daemon.bus is not None:
        env["DBUS_SYSTEM_BUS_ADDRESS"] = daemon.bus.address
    su_err = world.tmp / "su.stderr"

    def su(pam_file: Path) -> list[str]:
        return [unshare, "--mount", "--propagation", "private", sh, "-c", prep + SU_SCRIPT,
                str(pam_file), user.name]

    arms: list[tuple[Path, list[float]]] = [
        (without, result.without_hook), (with_hook, result.with_hook),
        (open_only, result.open_only)]
    if with_login1:
        arms.append((login1, result.login1))
        log(f"su -l {user.name} -c true: {runs} sessions each without a session module, with the "
            "hook, with it for open_session only, and with stock pam_systemd -> login1; interleaved")
    else:
        log(f"su -l {user.name} -c true: {runs} sessions each without the hook, with it, and with "
            f"it for open_session only; interleaved (no pam_systemd arm: {result.login1_skip})")
    creating = len(arms) - 1  # every arm but A creates a session
    created_before = _created(daemon)
    for _ in range(5):  # warm caches (su, PAM modules, the hook's .py) outside the sample
        for pam_file, _samples in arms:
            _timed(world, su(pam_file), env, su_err)
    warm_created = _created(daemon) - created_before
    if warm_created != 5 * creating:
        raise RuntimeError(f"{warm_created} sessions were created in {5 * creating} warm-up "
                           f"logins:\n{daemon.log_tail()}")
    created_before = _created(daemon)
    probe_before = len(daemon.probe_lines())
    for i in range(runs):
        for pam_file, samples in arms if i % 2 == 0 else reversed(arms):
            time.sleep(IDLE_GAP)  # sparse logins: no migration of the previous run warms this one's
            samples.append(_timed(world, su(pam_file), env, su_err))
    result.sessions_created = _created(daemon) - created_before
    _read_probe(daemon.probe_lines()[probe_before:], result)
    _wait_no_sessions(daemon, 60.0)

    if with_login1:
        log(f"pam_systemd alone: pam_open_session/pam_close_session on one PAM handle, {runs} "
            "processes, each also timing the same stack without it")
        _pam_driver(world, daemon, user, runs, prep, result)

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


def _probe_records(lines: list[str], source: str) -> list[dict[str, float]]:
    """The daemon's own clocks (bench/daemon_probe.py): one dict per successful session start."""
    records = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 2 and fields[0] == source and fields[1] == "ok":
            records.append({k: float(v) for k, v in (f.split("=", 1) for f in fields[2:])})
    return records


def _read_probe(lines: list[str], result: PamResult) -> None:
    for record in _probe_records(lines, "login1"):
        result.login1_created += 1
        result.daemon_login1.append(record["total"])
        result.daemon_login1_creds.append(record["creds"])
        result.daemon_login1_core.append(record["core"])
        result.daemon_login1_move.append(record["move"])
        result.daemon_login1_mkdir.append(record["mkdir"])
        result.daemon_login1_rest.append(record["total"] - record["move"])
    for record in _probe_records(lines, "api"):
        result.daemon_api.append(record["total"])
        result.daemon_api_move.append(record["move"])


def _pam_driver(world: World, daemon: Daemon, user: TestUser, runs: int, prep: str,
                result: PamResult) -> None:
    """pam_systemd's own open and close, on one PAM handle, beside pam_unix alone."""
    assert daemon.bus is not None
    confdir = world.tmp / "pam.d"
    confdir.mkdir(exist_ok=True)
    (confdir / "logoutd-bench-base").write_text("session  required   pam_unix.so\n")
    (confdir / "logoutd-bench-login1").write_text(
        "session  required   pam_unix.so\nsession  required   pam_systemd.so\n")
    out = world.tmp / "pam-driver-times"
    err = world.tmp / "pam-driver.stderr"
    env = dict(world.children.env, DBUS_SYSTEM_BUS_ADDRESS=daemon.bus.address)
    argv = [which("unshare"), "--mount", "--propagation", "private", which("sh"), "-c",
            prep + 'exec "$@"', "sh", SYSTEM_PYTHON, "-IS", "-c", PAM_DRIVER, str(confdir),
            user.name, str(out)]
    created = _created(daemon)
    probe_before = 0
    for i in range(5 + runs):  # 5 warm-up processes
        if i == 5:
            probe_before = len(daemon.probe_lines())
        time.sleep(IDLE_GAP)
        _timed(world, [*argv, "base-first" if i % 2 == 0 else "login1-first"], env, err)
    result.daemon_driver_login1 = [
        r["total"] for r in _probe_records(daemon.probe_lines()[probe_before:], "login1")]
    if _created(daemon) - created != 5 + runs:
        raise RuntimeError(f"{_created(daemon) - created} sessions from {5 + runs} pam_systemd "
                           f"opens:\n{daemon.log_tail()}")
    for line in out.read_text().splitlines()[5:]:
        base_open, base_close, login1_open, login1_close = (float(x) for x in line.split())
        result.base_open.append(base_open)
        result.base_close.append(base_close)
        result.login1_open.append(login1_open)
        result.login1_close.append(login1_close)
    _wait_no_sessions(daemon, 60.0)


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
            probed = len(daemon.probe_lines())
            leader = children.spawn([SYSTEM_PYTHON, "-IS", "-c", HOOK_LEADER, str(hook),
                                     str(daemon.runtime_dir), str(out)], env=env)
            if children.wait(leader) != 0 or _created(daemon) != created + 1:
                raise RuntimeError(f"hook leader failed or created no session:\n{daemon.log_tail()}")
            inside = _probe_records(daemon.probe_lines()[probed:], "api")
            if len(inside) != 1:
                raise RuntimeError(f"{len(inside)} create_session records for one hook run")
            result.hook_open_handler.append(inside[0]["total"])
            result.hook_open_move.append(inside[0]["move"])

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
            daemon.wait_session_removed(session["session"]["id"], 30.0)
        for line in out.read_text().splitlines():
            opened, closed = (float(x) for x in line.split())
            result.hook_open.append(opened)
            result.hook_close.append(closed)
    finally:
        cgtree.wait_empty(own, 10.0)
        own.rmdir()
    _wait_no_sessions(daemon, 60.0)


def _created(daemon: Daemon) -> int:
    return len(re.findall(r"New session \S+ of user", daemon.log_text()))


def _wait_no_sessions(daemon: Daemon, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while daemon.call("status")["sessions"]:
        if time.monotonic() > deadline:
            raise TimeoutError(f"su sessions still listed after {timeout:g} s: "
                               f"{daemon.call('list_sessions')}")
        time.sleep(0.05)
