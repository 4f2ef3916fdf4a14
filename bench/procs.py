"""Every process the benchmark starts: spawned with posix_spawn, tracked by pid, reaped by us.

The bench makes itself a child subreaper, so whatever its children leave behind is reparented
to it (not to PID 1) and reaped here. A pid is signalled only while it is one of our unreaped
children, so it cannot have been reused by anybody else. Reading /proc and killing a test
user's processes are the harness' (tests.integration.harness.procs).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from tests.integration.harness.procs import status_field

PR_SET_CHILD_SUBREAPER = 36
# Reset in every child: Python ignores SIGPIPE/SIGXFSZ, and our own handlers must not leak.
_DEFAULT_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                    signal.SIGQUIT)
_INTERRUPTS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
IGNORER_SCRIPT = 'trap "" TERM HUP; exec sleep 100000'


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")


def which(name: str) -> str:
    path = shutil.which(name, path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    if path is None:
        raise FileNotFoundError(f"{name} is not installed")
    return path


class Children:
    """Spawn, signal and reap our own child processes (and orphans reparented to us)."""

    def __init__(self) -> None:
        self.live: set[int] = set()
        self.status: dict[int, int] = {}  # reaped pid -> wait status (kept only for tracked pids)
        self._sleep = which("sleep")
        self._sh = which("sh")
        self.env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                     "LANG": "C"}

    def spawn(self, argv: Sequence[str], *, stdout: Path | None = None, stderr: Path | None = None,
              env: dict[str, str] | None = None, setsid: bool = False) -> int:
        actions: list[tuple[int, int, str, int, int]] = []
        for fd, target in ((1, stdout), (2, stderr)):
            dest = str(target) if target is not None else os.devnull
            actions.append((os.POSIX_SPAWN_OPEN, fd, dest, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        actions_in: list[tuple[int, int, str, int, int]] = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
        # Block our interrupting signals until the pid is recorded: a handler raising between
        # posix_spawn() and the bookkeeping would leak a child. The child gets an empty mask.
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _INTERRUPTS)
        try:
            pid = os.posix_spawn(argv[0], list(argv), env if env is not None else self.env,
                                 file_actions=actions_in + actions, setsigdef=_DEFAULT_SIGNALS,
                                 setsigmask=(), setsid=setsid)
            self.live.add(pid)
            self.status.pop(pid, None)  # a recycled pid: forget the previous owner's exit status
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        return pid

    def sleeper(self) -> int:
        return self.spawn([self._sleep, "100000"])

    def ignorer(self) -> int:
        """A sleep that ignores SIGTERM and SIGHUP (ignored dispositions survive exec)."""
        return self.spawn([self._sh, "-c", IGNORER_SCRIPT])

    def sleepers(self, n: int, ignore: bool = False) -> list[int]:
        return [self.ignorer() if ignore else self.sleeper() for _ in range(n)]

    def kill(self, pid: int, signo: int = signal.SIGKILL) -> None:
        """Signal one of our unreaped children; anything else is refused."""
        if pid not in self.live:
            raise ValueError(f"pid {pid} is not a live child of the benchmark")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signo)

    def _record(self, pid: int, status: int) -> None:
        if pid in self.live:
            self.live.discard(pid)
            self.status[pid] = status

    def reap(self, pids: Iterable[int], timeout: float = 30.0) -> None:
        """Wait for these children (already killed) to exit; raise if one outlives the timeout."""
        deadline = time.monotonic() + timeout
        for pid in pids:
            while pid in self.live:
                try:
                    got, status = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    self.live.discard(pid)
                    break
                if got == pid:
                    self._record(pid, status)
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"child {pid} did not exit within {timeout:g} s")
                time.sleep(0.002)

    def wait(self, pid: int) -> int:
        """Block until this child exits; its wait status."""
        while True:
            try:
                got, status = os.waitpid(pid, 0)
            except InterruptedError:
                continue
            except ChildProcessError:
                self.live.discard(pid)
                return self.status.get(pid, 0)
            self._record(got, status)
            return status

    def reap_orphans(self) -> None:
        """Reap whatever exited, ours or reparented to us (subreaper), without blocking."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._record(pid, status)

    def exit_status(self, pid: int) -> int | None:
        """The exit status if reaped (after a non-blocking reap attempt), else None."""
        if pid in self.live:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                self.live.discard(pid)
                return None
            if got == pid:
                self._record(pid, status)
        return self.status.get(pid)

    def kill_all(self, timeout: float = 10.0) -> list[int]:
        """SIGKILL every live child we started and reap them all; the pids that would not die.

        Any other child of ours (ppid == us, e.g. an orphan reparented to this subreaper) is
        unreaped, so its pid is still ours: it is killed and reaped too.
        """
        self.live.update(_children_of(os.getpid()))
        for pid in list(self.live):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while self.live and time.monotonic() < deadline:
            self.reap_orphans()
            for pid in list(self.live):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:  # reaped by someone else's waitpid: forget it
                    self.live.discard(pid)
            if self.live:
                time.sleep(0.01)
        self.reap_orphans()
        return sorted(self.live)


def _children_of(parent: int) -> set[int]:
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            data = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        if int(data[data.rindex(b")") + 2:].split()[1]) == parent:
            found.add(int(entry))
    return found


def ignores_term_and_hup(pid: int) -> bool:
    """True once the process runs `sleep` with SIGTERM and SIGHUP ignored."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return False
    mask = status_field(pid, "SigIgn")
    if comm != "sleep" or mask is None:
        return False
    bits = int(mask, 16)
    return bool(bits & (1 << (signal.SIGTERM - 1))) and bool(bits & (1 << (signal.SIGHUP - 1)))


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat."""
    data = Path(f"/proc/{pid}/stat").read_bytes()
    fields = data[data.rindex(b")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])  # fields 14 and 15
    return ticks / os.sysconf("SC_CLK_TCK")
