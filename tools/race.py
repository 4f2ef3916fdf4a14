#!/usr/bin/env python3
"""A fair race: logoutd, systemd-logind 252 and elogind 246 measured by one method in one sitting.

Developer's tool, not part of logoutd (bench/ stays independent of the anchors). It brings up
the two anchors of ../shared/anchors (bench-anchor.py, imported by path, once per anchor) and a
logoutd from this checkout (bench/world.py: its own cgroup subtree, a `lgtst*` user, the PAM
hook with the installer's default line, `type=open_session`), and runs the same workload
through `su -l` in each:

- logout: a `su -l USER -c SCRIPT` whose SCRIPT starts N `setsid nohup sleep` (SIGTERM- and
  SIGHUP-ignoring ones for `ignterm`), prints READY and reads stdin. When all N are in the
  session cgroup, stdin is closed; the clocks start when su's exit shows on its pidfd and stop
  at the last workload process's exit (N pidfds in one epoll) and at `populated 0` in the
  scope's cgroup.events. The kernel's own `cgroup.kill` of the same N sleeps (same spawn, in a
  cgroup of this tool's) is the fourth arm, timed from the write. Arms are interleaved, the
  order reversed every round (L S E K, K E S L, ...).
- login: `su -l USER -c CHECK` with and without the session module, alternating, 50 ms of
  pause before each su, timed inside each daemon's environment with bash's $EPOCHREALTIME;
  CHECK is a builtin test that the login got a session.

The load average is recorded at every trial. `--baseline REV` adds logoutd at REV as one more
arm (a git worktree of it, removed at the end; the hook is this checkout's), for before and
after figures from one sitting. Run as root from the repo root:

    .venv/bin/python tools/race.py [--rounds 3] [--n 1 100 1000 10000] [--json out.json]

Both anchors are always brought down again (and this tool's cgroups removed) at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.util
import json
import os
import random
import resource
import select
import signal
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "src"))

from bench import cgtree  # noqa: E402
from bench.world import Daemon, World, log  # noqa: E402

from logoutd.api.client import Client  # noqa: E402
from logoutd.pam.install import install_hook, pam_line  # noqa: E402

ANCHORS = REPO.parent / "shared" / "anchors" / "bench-anchor.py"
# Debian 12's /etc/pam.d/su-l, as in the anchors' rootfs: the same stack for all three (the
# host's common-session has pam_systemd.so, a no-op without /run/systemd/seats); logoutd's line
# comes after it, as docs/install.md puts it after pam_unix.so.
COMMON_SESSION = Path("/etc/pam.d/common-session")  # the host's; only bound over in a namespace
PAM_BASE = ("auth      include   su\naccount   include   su\npassword  include   su\n"
            "session   optional  pam_keyinit.so force revoke\nsession   include   su\n")
SLEEP_S = 900
PAUSE = 0.05
# systemd 252 caps a scope at DefaultTasksMax (15 % of pid_max: 4915 here) and user-UID.slice
# at 33 %: N = 10 000 would not fit. Written into the anchor's rootfs before it boots.
SYSTEMD_TASKS = {"/etc/systemd/system.conf.d/60-race.conf": "[Manager]\nDefaultTasksMax=infinity\n",
                 "/etc/systemd/system/user-.slice.d/60-race.conf": "[Slice]\nTasksMax=infinity\n"}


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def workload(n: int, tag: str, ignterm: bool, hold: bool = True) -> str:
    prefix = "trap '' TERM HUP; " if ignterm else ""
    tail = "; read _" if hold else ""
    return (f"{prefix}i=0; while [ $i -lt {n} ]; do "
            f"setsid nohup sleep {tag} </dev/null >/dev/null 2>&1 & i=$((i+1)); done; "
            f"echo READY $(sed -n 's/^0:://p' /proc/self/cgroup){tail}")


def cmdline(pid: int) -> list[bytes] | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
    except OSError:
        return None


def procs(cgroup: Path) -> list[int]:
    try:
        return [int(x) for x in (cgroup / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def populated(fd: int) -> bool:
    try:
        return b"populated 1" in os.pread(fd, 4096, 0)
    except OSError:
        return False


def wait_workload(cgroup: Path, want: list[bytes], n: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        work = [p for p in procs(cgroup) if cmdline(p) == want]
        if len(work) == n:
            return work
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(work)}/{n} workload processes in {cgroup}")
        time.sleep(0.01)


def readline(stream: Any, timeout: float) -> str:
    buf = b""
    deadline = time.monotonic() + timeout
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            raise TimeoutError("no READY from the session")
        c = os.read(stream.fileno(), 1)
        if not c:
            raise RuntimeError("the session ended before READY")
        buf += c
    return buf.decode()


def watch(work: list[int], want: list[bytes], cgroup: Path, start: Any, su: int | None,
          window: float) -> dict[str, Any]:
    """Start the logout (start()), then time su's exit, the last workload exit and the empty scope."""
    pidfds = {}
    for pid in work:
        with contextlib.suppress(ProcessLookupError):
            pidfds[os.pidfd_open(pid)] = pid
    ev = os.open(cgroup / "cgroup.events", os.O_RDONLY)
    su_fd = os.pidfd_open(su) if su is not None else None
    ep = select.epoll(len(pidfds) + 2)
    try:
        for fd in pidfds:
            ep.register(fd, select.EPOLLIN | select.EPOLLONESHOT)
        ep.register(ev, select.EPOLLPRI | select.EPOLLERR)
        if su_fd is not None:
            ep.register(su_fd, select.EPOLLIN | select.EPOLLONESHOT)
        left = len(pidfds)
        t0 = time.monotonic()
        start()
        t_su = None if su_fd is not None else t0
        t_last = t_empty = None
        deadline = t0 + window
        while (left or t_empty is None or t_su is None) and time.monotonic() < deadline:
            events = ep.poll(max(0.001, min(0.002, deadline - time.monotonic())), len(pidfds) + 2)
            now = time.monotonic()
            for fd, _ in events:
                if fd == su_fd:
                    t_su = now
                elif fd == ev:
                    if t_empty is None and not populated(ev):
                        t_empty = now
                else:
                    left -= 1
                    if left == 0:
                        t_last = now
            if t_empty is None and not populated(ev):  # an event may come before registration
                t_empty = now
        survivors = sum(cmdline(p) == want for p in work)  # a zombie's cmdline is empty
        base = t_su if t_su is not None else t0
        return {"req_to_su": (t_su - t0) if t_su is not None else None,
                "last": (t_last - base) if t_last is not None and t_su is not None else None,
                "empty": (t_empty - base) if t_empty is not None and t_su is not None else None,
                "req_last": (t_last - t0) if t_last is not None else None,
                "req_empty": (t_empty - t0) if t_empty is not None else None,
                "survivors": survivors, "load": loadavg()}
    finally:
        for fd in list(pidfds) + [ev] + ([su_fd] if su_fd is not None else []):
            os.close(fd)
        ep.close()


def end_login(p: subprocess.Popen[bytes], work: list[int], want: list[bytes]) -> None:
    """After a trial, whatever happened: its workload and its su are gone."""
    kill_left(work, want)
    with contextlib.suppress(Exception):
        if p.stdin and not p.stdin.closed:
            p.stdin.close()
        p.wait(timeout=15)
    if p.poll() is None:
        p.kill()
        p.wait()


def kill_left(work: list[int], want: list[bytes]) -> None:
    for _ in range(3):
        left = [p for p in work if cmdline(p) == want]
        if not left:
            return
        for p in left:
            if cmdline(p) == want:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGKILL)
        time.sleep(0.2)


class Anchor:
    """One anchor of bench-anchor.py, loaded as a module of its own (its globals are per anchor)."""

    def __init__(self, kind: str, stop_timeout: float) -> None:
        spec = importlib.util.spec_from_file_location(f"anchor_{kind}", ANCHORS)
        assert spec is not None and spec.loader is not None
        self.m: Any = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.m)
        self.m.select_anchor(kind)
        self.kind = kind
        self.name = "systemd-logind" if kind == "systemd" else "elogind"
        self.stop_timeout = stop_timeout
        self.init: int | None = None
        os.makedirs(self.m.STATE, exist_ok=True)
        self.lock = open(f"{self.m.STATE}/lock", "w")  # noqa: SIM115  held until the process ends
        fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def up(self) -> None:
        if self.kind == "systemd":
            for path, text in SYSTEMD_TASKS.items():
                self.m.write_file(self.m.ROOT + path, text)
        self.m.write_dropin("yes")
        self.init, _ = self.m.cmd_up(types.SimpleNamespace(stop_timeout=self.stop_timeout))
        if self.kind == "systemd":
            self.m.set_stop_timeout(self.init, self.stop_timeout)
        self.version = self.m.anchor_exec(self.init, ["dpkg-query", "-W", "-f", "${Version}",
                                                      self.m.P["pkg"]],
                                          capture_output=True, text=True).stdout

    def down(self) -> None:
        with contextlib.suppress(Exception, SystemExit):
            self.m.cmd_down()

    def trial(self, n: int, ignterm: bool, window: float) -> dict[str, Any]:
        tag = f"{SLEEP_S}.{random.randrange(10**6, 10**7)}"
        want = [b"sleep", tag.encode()]
        p = subprocess.Popen([*self.m.enter(self.init), "su", "-l", self.m.USER, "-c",
                              workload(n, tag, ignterm)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, preexec_fn=self.m.into_anchor_cgroup)
        work: list[int] = []
        cgroup = None
        try:
            assert p.stdin is not None
            cgroup = Path(self.m.CG + readline(p.stdout, 300).split()[1])
            work = wait_workload(cgroup, want, n, 300)
            sus = [q for q in procs(cgroup) if (cmdline(q) or [b""])[0].endswith(b"su")]
            if not sus:
                raise RuntimeError("su not in the session cgroup")
            return watch(work, want, cgroup, p.stdin.close, sus[0], window)
        finally:
            end_login(p, work, want)
            if cgroup is not None and self.kind == "systemd":
                sid = cgroup.name.removeprefix("session-").removesuffix(".scope")
                self.m.wait_session_gone(self.init, sid)
            elif cgroup is not None:
                with contextlib.suppress(OSError):  # elogind may remove it at the same time
                    self.m.remove_cgroups(str(cgroup))

    def login_script(self, runs: int) -> tuple[list[str], str]:
        pam = "/etc/pam.d/common-session"
        host = self.m.ROOT + pam
        orig = Path(host).read_text()
        mod = self.m.P["pam"]
        without = "".join(("#" + ln if ln.split()[2:3] == [mod] and ln.startswith("session") else ln)
                          for ln in orig.splitlines(keepends=True))
        assert without != orig
        Path(host + ".race-with").write_text(orig)
        Path(host + ".race-without").write_text(without)
        check = "'[ -n \"$XDG_SESSION_ID\" ]'"
        return (self.m.enter(self.init),
                login_loop(runs, f"cp {pam}.race-$m {pam}", f"su -l {self.m.USER} -c {check}"))

    def login_done(self) -> None:
        host = self.m.ROOT + "/etc/pam.d/common-session"
        Path(host).write_text(Path(host + ".race-with").read_text())
        for m in ("with", "without"):
            os.unlink(f"{host}.race-{m}")
        if self.kind == "systemd":
            self.m.reset_failed_scopes(self.init)
        else:
            self.m.remove_cgroups(self.m.CG, keep_top=True)

    def login(self, runs: int) -> dict[str, Any]:
        argv, script = self.login_script(runs)
        try:
            out = subprocess.run([*argv, "bash", "-c", script], capture_output=True, text=True,
                                 timeout=60 + runs * 10, preexec_fn=self.m.into_anchor_cgroup).stdout
        finally:
            self.login_done()
        return parse_login(out)


def login_loop(runs: int, switch: str, su: str) -> str:
    """Alternate with/without (the order flips each pair), PAUSE before each timed su."""
    return (f"for i in $(seq 1 {runs}); do if [ $((i % 2)) = 1 ]; then o='with without'; "
            f"else o='without with'; fi; for m in $o; do {switch}; sleep {PAUSE}; "
            f"s=$EPOCHREALTIME; {su}; r=$?; e=$EPOCHREALTIME; echo \"$m $s $e $r\"; done; done")


def parse_login(out: str) -> dict[str, Any]:
    res: dict[str, Any] = {"with": [], "without": [], "registered": 0, "load": loadavg()}
    for line in out.splitlines():
        m, s, e, r = line.split()
        res[m].append(float(e) - float(s))
        res["registered"] += m == "with" and r == "0"
    return res


class Logoutd:
    """logoutd from this checkout (or, with `src`, another one: `--baseline`), its PAM hook
    (this checkout's) on the installer's default (open-only) line. With `pam_systemd`: no
    hook, but `logoutd --dbus` on a private bus, driven by the host's stock pam_systemd.so (in
    its common-session, the module the anchors' su-l runs too), with its reference FIFO; for
    login, "without" comments that module out of common-session, as for the anchors."""

    def __init__(self, world: World, stop_timeout: float, name: str = "logoutd",
                 src: Path | None = None, cgroup_root: Path | None = None,
                 pam_systemd: bool = False) -> None:
        self.world = world
        self.name = name
        tag = name.replace(" ", "-").replace("(", "").replace(")", "")
        self.user = world.add_user()
        config = f"[Login]\nKillUserProcesses=yes\n[Logoutd]\nSessionStopTimeoutSec={stop_timeout:g}\n"
        self.daemon: Daemon = world.start_daemon(f"race-{tag}", config, src=src,
                                                 cgroup_root=cgroup_root, dbus=pam_systemd)
        self.pam = world.tmp / f"pam-race-{tag}"
        self.with_pam = Path(f"{self.pam}-with")
        self.without_pam = Path(f"{self.pam}-without")
        self.current = Path(f"{self.pam}-current")
        self.env: dict[str, str] | None = None
        if pam_systemd:
            assert self.daemon.bus is not None
            self.env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=self.daemon.bus.address)
            su_l = world.tmp / f"pam-race-{tag}-su-l"
            su_l.write_text(PAM_BASE)
            session = COMMON_SESSION.read_text()
            without = "".join("#" + ln if ln.startswith("session") and "pam_systemd.so" in ln
                              else ln for ln in session.splitlines(keepends=True))
            assert without != session, f"no pam_systemd.so in {COMMON_SESSION}"
            self.with_pam.write_text(session)
            self.without_pam.write_text(without)
            self.current.write_text(session)
            # $0: the common-session of this run; pam_systemd acts only if /run/systemd/seats is
            # there (logind_running()): a tmpfs in the su's own mount namespace.
            self.mounts = (f"mount -t tmpfs -o mode=0755 logoutd-race /run/systemd && "
                           f"mkdir /run/systemd/seats && mount --bind {su_l} /etc/pam.d/su-l && "
                           f'mount --bind "$0" {COMMON_SESSION} && ')
            self.check = "'[ -n \"$XDG_SESSION_ID\" ]'"
        else:
            hook = world.tmp / f"logoutd-pam-{tag}"
            install_hook(hook)
            line = pam_line(hook).replace("session optional", "session  optional  ")
            self.with_pam.write_text(PAM_BASE + f"{line} --runtime-dir {self.daemon.runtime_dir}\n")
            self.without_pam.write_text(PAM_BASE)
            self.current.write_text(PAM_BASE)
            self.mounts = 'mount --bind "$0" /etc/pam.d/su-l && '  # $0: the su-l of this run
            self.check = ("'while read -r l; do [[ $l == 0::*/session-*.scope ]] && exit 0; done "
                          "</proc/self/cgroup; exit 1'")
        checkout = REPO if src is None else src.parent
        self.version = subprocess.run(["git", "-C", str(checkout), "describe", "--always", "--dirty"],
                                      capture_output=True, text=True).stdout.strip()

    def su_argv(self, pam: Path, command: str) -> list[str]:
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                self.mounts + 'exec su -l "$1" -c "$2"', str(pam), self.user.name, command]

    def trial(self, n: int, ignterm: bool, window: float) -> dict[str, Any]:
        tag = f"{SLEEP_S}.{random.randrange(10**6, 10**7)}"
        want = [b"sleep", tag.encode()]
        p = subprocess.Popen(self.su_argv(self.with_pam, workload(n, tag, ignterm)),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=self.env)
        work: list[int] = []
        try:
            assert p.stdin is not None
            rel = readline(p.stdout, 300).split()[1]
            cgroup = Path(str(self.world.subtree.parent) + rel)
            if not cgroup.is_relative_to(self.world.subtree):
                raise RuntimeError(f"the login is in {rel}, not in a logoutd session")
            work = wait_workload(cgroup, want, n, 300)
            return watch(work, want, cgroup, p.stdin.close, p.pid, window)
        finally:
            end_login(p, work, want)
            self.wait_no_sessions()
            self.world.children.reap_orphans()

    def login(self, runs: int) -> dict[str, Any]:
        script = self.mounts + login_loop(runs, 'cp "$1"-$m "$0"',
                                          f"su -l {self.user.name} -c {self.check}")
        out = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                              script, str(self.current), str(self.pam)], env=self.env,
                             capture_output=True, text=True, timeout=60 + runs * 10).stdout
        self.wait_no_sessions()
        return parse_login(out)

    def wait_no_sessions(self) -> None:
        """Untimed: the daemon is done with the last session (a fresh connection each time: the
        daemon may drop an idle one)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not Client(self.daemon.socket, timeout=30).call("list_sessions")["sessions"]:
                return
            time.sleep(0.01)
        raise TimeoutError("logoutd still has sessions 60 s after the logout")

    def down(self) -> None:
        pass  # the World stops the daemon, removes the user and the cgroups


class Kernel:
    """The same N sleeps in a cgroup of this tool's, emptied by the kernel's cgroup.kill."""

    name = "kernel cgroup.kill"

    def __init__(self, world: World) -> None:
        self.world = world
        self.count = 0

    def trial(self, n: int, ignterm: bool, window: float) -> dict[str, Any]:
        self.count += 1
        cgroup = self.world.subtree / f"race-kernel-{self.count}"
        cgroup.mkdir()
        tag = f"{SLEEP_S}.{random.randrange(10**6, 10**7)}"
        want = [b"sleep", tag.encode()]
        work: list[int] = []
        try:
            script = f'echo $$ > "$0/cgroup.procs" && {workload(n, tag, ignterm, hold=False)}'
            subprocess.run(["bash", "-c", script, str(cgroup)], check=True,
                           stdout=subprocess.DEVNULL, timeout=300)
            work = wait_workload(cgroup, want, n, 300)
            return watch(work, want, cgroup, lambda: (cgroup / "cgroup.kill").write_text("1"), None,
                         window)
        finally:
            kill_left(work, want)
            self.world.children.reap_orphans()
            cgtree.remove_tree(cgroup)

    def down(self) -> None:
        pass


def q(values: list[float]) -> str:
    if not values:
        return "–"
    ms = sorted(v * 1000 for v in values)
    med = statistics.median(ms)
    if len(ms) >= 4:
        qs = statistics.quantiles(ms, n=4)
        return f"{med:.1f} [{qs[0]:.1f}–{qs[2]:.1f}]"
    return f"{med:.1f}"


def table(results: dict[str, Any], names: list[str]) -> str:
    lines = ["| workload, N | endpoint | " + " | ".join(names) + " |",
             "|---|---|" + "---|" * len(names)]
    for key, per in results["logout"].items():
        for endpoint, label in (("last", "su exit → last process exit"),
                                ("empty", "su exit → scope empty"),
                                ("req_last", "logout request → last process exit"),
                                ("req_to_su", "logout request → su exit")):
            cells = []
            for name in names:
                trials = per.get(name, [])
                done = [t[endpoint] for t in trials if t[endpoint] is not None]
                lost = len(trials) - len(done)
                cell = q(done) + (f", n={len(done)}" if trials else "")
                if lost:
                    cell += f"; **{lost} of {len(trials)} not emptied**"
                cells.append(cell if trials else "–")
            lines.append(f"| {key} | {label} | " + " | ".join(cells) + " |")
        loads = [t["load"] for ts in per.values() for t in ts]
        lines.append(f"| {key} | load average (1 min) during these trials | "
                     f"{min(loads):.2f}–{max(loads):.2f} |" + " |" * (len(names) - 1))
    login = results["login"]
    if login:
        lines += ["", "| `su -l` open+close | " + " | ".join(n for n in names if n in login) + " |",
                  "|---|" + "---|" * len([n for n in names if n in login])]
        rows: list[list[str]] = [["added by the module (median with − median without)"],
                                 ["with the module: median [IQR]"], ["without: median [IQR]"],
                                 ["runs with / without; registered"], ["load average (1 min)"]]
        for name in names:
            if name not in login:
                continue
            w = [x for r in login[name] for x in r["with"]]
            wo = [x for r in login[name] for x in r["without"]]
            rounds = " / ".join(
                f"{(statistics.median(r['with']) - statistics.median(r['without'])) * 1000:+.1f}"
                for r in login[name] if r["with"] and r["without"])
            rows[0].append(f"{(statistics.median(w) - statistics.median(wo)) * 1000:+.1f} ms "
                           f"(rounds {rounds})" if w and wo else "–")
            rows[1].append(q(w))
            rows[2].append(q(wo))
            rows[3].append(f"{len(w)} / {len(wo)}; {sum(r['registered'] for r in login[name])}")
            loads = [r["load"] for r in login[name]]
            rows[4].append(f"{min(loads):.2f}–{max(loads):.2f}")
        lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, nargs="+", default=[1, 100, 1000, 10000])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--rounds-big", type=int, default=None,
                    help="rounds for N >= 10000 (default: --rounds)")
    ap.add_argument("--ignterm-n", type=int, nargs="*", default=[1, 100, 1000],
                    help="N for the SIGTERM+SIGHUP-ignorers (default 1 100 1000; none: skip)")
    ap.add_argument("--stop-timeout", type=float, default=2.0,
                    help="SessionStopTimeoutSec= of logoutd and DefaultTimeoutStopSec= of "
                         "systemd (elogind has none) for the ignorers (default 2)")
    ap.add_argument("--login-runs", type=int, default=30,
                    help="with/without pairs per daemon per round (default 30; 0: skip)")
    ap.add_argument("--only", nargs="+",
                    default=["logoutd", "logoutd-pam_systemd", "systemd", "elogind"],
                    choices=["logoutd", "logoutd-pam_systemd", "systemd", "elogind"])
    ap.add_argument("--json", type=Path, help="write every sample there")
    ap.add_argument("--tmp-base", type=Path, default=Path("/dev/shm"),
                    help="where logoutd's runtime and state dirs, the hook and the PAM files go "
                         "(default /dev/shm: a tmpfs, as /run is on most machines and inside "
                         "the anchors)")
    ap.add_argument("--strace-logoutd", type=Path, metavar="FILE",
                    help="count logoutd's system calls over the run (strace -c -f -o FILE): "
                         "kill(2) per process, cgroup.procs reads, epoll wakeups")
    ap.add_argument("--baseline", metavar="REV",
                    help="also race logoutd at REV (a git worktree of it, removed at the end), "
                         "interleaved with this checkout's: before and after in one sitting")
    ap.add_argument("--strace-timeline", action="store_true",
                    help="with --strace-logoutd: every call with its time (strace -f -ttt -T) "
                         "instead of the counts, to see what comes before the first kill(2)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("must run as root")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(args.n) + 256
    if hard < need:
        sys.exit(f"RLIMIT_NOFILE hard limit {hard} < {need} (one pidfd per process)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))
    results: dict[str, Any] = {"logout": {}, "login": {}, "started": time.strftime("%F %T %Z"),
                               "kernel": os.uname().release, "cpus": os.cpu_count()}
    anchors: list[Any] = []
    worktrees: list[Path] = []
    t_start = time.monotonic()
    tracer: subprocess.Popen[bytes] | None = None
    with World(tmp_base=args.tmp_base) as world:
        try:
            arms: list[Any] = []
            # Each logoutd in a cgroup of its own below the subtree: all at the same depth.
            if "logoutd" in args.only:
                arms.append(Logoutd(world, args.stop_timeout, cgroup_root=world.subtree / "hook"))
            if "logoutd" in args.only and args.baseline:
                base = world.tmp / "baseline"
                subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(base),
                                args.baseline], check=True, capture_output=True)
                worktrees.append(base)
                arms.append(Logoutd(world, args.stop_timeout, f"logoutd {args.baseline}",
                                    base / "src", world.subtree / "baseline"))
            if "logoutd-pam_systemd" in args.only:
                arms.append(Logoutd(world, args.stop_timeout, "logoutd (pam_systemd)",
                                    cgroup_root=world.subtree / "dbus", pam_systemd=True))
            for kind in ("systemd", "elogind"):
                if kind in args.only:
                    anchor = Anchor(kind, args.stop_timeout)
                    anchors.append(anchor)
                    anchor.up()
                    arms.append(anchor)
            kernel = Kernel(world)
            if args.strace_logoutd and arms and isinstance(arms[0], Logoutd):
                how = ["-f", "-ttt", "-T"] if args.strace_timeline else ["-c", "-f"]
                tracer = subprocess.Popen(["strace", *how, "-o", str(args.strace_logoutd),
                                           "-p", str(arms[0].daemon.pid)],
                                          stderr=subprocess.DEVNULL)
                time.sleep(0.5)
            results["versions"] = {a.name: a.version for a in arms}
            names = [a.name for a in arms] + [kernel.name]
            log(f"race: {', '.join(f'{k} {v}' for k, v in results['versions'].items())}")
            plan = [(n, False) for n in args.n] + [(n, True) for n in args.ignterm_n]
            for n, ignterm in plan:
                key = f"{'ignore TERM+HUP' if ignterm else 'sleep'}, N={n}"
                per: dict[str, list[dict[str, Any]]] = results["logout"].setdefault(key, {})
                rounds = args.rounds_big if n >= 10000 and args.rounds_big else args.rounds
                for r in range(rounds):
                    order = arms + ([] if ignterm else [kernel])
                    if r % 2:
                        order = order[::-1]
                    for arm in order:
                        window = (args.stop_timeout + 3.0) if ignterm else 5.0 + n / 500
                        t = arm.trial(n, ignterm, window)
                        per.setdefault(arm.name, []).append(t)
                        log(f"{key} round {r + 1} {arm.name}: "
                            + ", ".join(f"{k} {v * 1000:.1f} ms" if isinstance(v, float) and k != "load"
                                        else f"{k} {v}" for k, v in t.items()))
            for r in range(args.login_runs and args.rounds):
                order = arms if r % 2 == 0 else arms[::-1]
                for arm in order:
                    res = arm.login(args.login_runs)
                    results["login"].setdefault(arm.name, []).append(res)
                    log(f"login round {r + 1} {arm.name}: with {q(res['with'])}, without "
                        f"{q(res['without'])}, registered {res['registered']}/{len(res['with'])}")
        finally:
            if tracer is not None and tracer.poll() is None:
                tracer.send_signal(signal.SIGINT)
                tracer.wait(timeout=30)
            for anchor in anchors:
                anchor.down()
            for base in worktrees:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(base)],
                               check=False, capture_output=True)
    results["minutes"] = (time.monotonic() - t_start) / 60
    results["ended"] = time.strftime("%F %T %Z")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"# {results['started']} – {results['ended']}, kernel {results['kernel']}, "
          f"{results['cpus']} CPUs; " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()))
    print(table(results, names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
