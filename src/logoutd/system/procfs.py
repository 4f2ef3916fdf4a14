"""Processes seen through /proc and pinned with pidfds, so a reused pid is never acted on."""

from __future__ import annotations

import asyncio
import os
import select
import signal
from collections.abc import Callable
from pathlib import Path

from logoutd.core.ports import ProcessInfo, ProcessRef
from logoutd.errors import ProcessGone
from logoutd.system.rawio import read_file

AUDIT_SESSION_UNSET = 4294967295
# A process sets its own command line (up to 6 MiB with a raised stack limit) and exe path; a
# leftovers record keeps this much of each, so 10 000 records stay a few MiB.
CMDLINE_MAX = 2048  # bytes read from /proc/PID/cmdline
EXE_MAX = 1024  # characters of /proc/PID/exe kept
CLK_TCK = os.sysconf("SC_CLK_TCK")  # /proc/PID/stat's start time is in these ticks


def read_stat(pid: int, proc: Path = Path("/proc")) -> list[str]:
    """Fields of /proc/PID/stat after the comm: index 0 is field 3 (state)."""
    try:
        data = read_file(f"{proc}/{pid}/stat")
    except (FileNotFoundError, ProcessLookupError):
        raise ProcessGone(f"Process {pid} has exited.") from None
    return data[data.rindex(b")") + 2 :].decode().split()


def start_time(pid: int, proc: Path = Path("/proc")) -> int:
    return int(read_stat(pid, proc)[19])  # field 22: starttime in clock ticks


class ProcessTable:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, proc: Path = Path("/proc")):
        self._loop = loop
        self._proc = proc
        self._fds: dict[ProcessRef, int] = {}
        self._btime: float | None = None

    def pin(self, pid: int) -> ProcessRef:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise ProcessGone(f"Process {pid} does not exist.") from None
        try:
            # Read the start time *after* opening the pidfd: both then name the same process.
            ref = ProcessRef(pid, start_time(pid, self._proc))
        except BaseException:
            os.close(fd)
            raise
        self._replace(ref, fd)
        return ref

    def repin(self, pid: int, start: int) -> ProcessRef | None:
        try:
            ref = self.pin(pid)
        except ProcessGone:
            return None
        if ref.start_time != start:
            self.release(ref)
            return None
        return ref

    def _replace(self, ref: ProcessRef, fd: int) -> None:
        old = self._fds.pop(ref, None)
        if old is not None:
            self._close(old)
        self._fds[ref] = fd

    def _close(self, fd: int) -> None:
        if self._loop is not None:
            self._loop.remove_reader(fd)
        os.close(fd)

    def release(self, ref: ProcessRef) -> None:
        fd = self._fds.pop(ref, None)
        if fd is not None:
            self._close(fd)

    def is_alive(self, ref: ProcessRef) -> bool:
        fd = self._fds.get(ref)
        if fd is None:
            return False
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return not poller.poll(0)  # a pidfd is readable once the process has exited

    def signal(self, ref: ProcessRef, signo: int) -> None:
        fd = self._fds.get(ref)
        if fd is None:
            raise ProcessGone(f"Process {ref.pid} is not pinned (it has exited).")
        try:
            signal.pidfd_send_signal(fd, signo)
        except ProcessLookupError:
            raise ProcessGone(f"Process {ref.pid} has exited.") from None

    def watch_exit(self, ref: ProcessRef, callback: Callable[[], None]) -> None:
        fd = self._fds.get(ref)
        if fd is None or self._loop is None:
            return
        self._loop.add_reader(fd, callback)

    def cgroup_of(self, pid: int) -> str:
        try:
            text = read_file(f"{self._proc}/{pid}/cgroup").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError):
            raise ProcessGone(f"Process {pid} has exited.") from None
        for line in text.splitlines():
            if line.startswith("0::"):
                return line[3:]
        return ""

    def audit_session_id(self, pid: int) -> int | None:
        try:
            value = int(read_file(f"{self._proc}/{pid}/sessionid"))
        except (OSError, ValueError):
            return None
        return None if value in (0, AUDIT_SESSION_UNSET) else value

    def owner(self, pid: int) -> int | None:
        try:
            return (self._proc / str(pid)).stat().st_uid
        except OSError:
            return None

    def describe(self, pid: int) -> ProcessInfo | None:
        """What a leftovers record needs; None if the process is gone (a race, not an error)."""
        base = self._proc / str(pid)
        try:
            stat = read_stat(pid, self._proc)
            comm = (base / "comm").read_text().rstrip("\n")
            with open(base / "cmdline", "rb") as f:
                raw = f.read(CMDLINE_MAX + 1)
            status = (base / "status").read_text()
            uid = base.stat().st_uid
        except (OSError, ProcessGone):
            return None
        try:
            exe = os.readlink(base / "exe")
        except OSError:
            exe = ""  # kernel threads, or another mount namespace's binary we may not read
        ignored = next((int(line.split()[1], 16) for line in status.splitlines()
                        if line.startswith("SigIgn:")), 0)
        cmdline = " ".join(a.decode(errors="replace") for a in raw[:CMDLINE_MAX].split(b"\0") if a)
        words = raw[:CMDLINE_MAX].removesuffix(b"\0")
        argv = tuple(a.decode(errors="replace") for a in words.split(b"\0")) if words else ()
        if len(raw) > CMDLINE_MAX:
            cmdline += "…"
        if len(exe) > EXE_MAX:
            exe = exe[:EXE_MAX] + "…"
        return ProcessInfo(
            pid=pid, ppid=int(stat[1]), uid=uid, comm=comm, cmdline=cmdline, exe=exe,
            start_time=self._boot_time() + int(stat[19]) / CLK_TCK,
            tty_nr=int(stat[4]), sid=int(stat[3]), sig_ignored=ignored, argv=argv,
        )

    def brief(self, pid: int) -> ProcessInfo | None:
        base = f"{self._proc}/{pid}"
        try:
            data = read_file(f"{base}/stat")
            raw = read_file(f"{base}/cmdline", CMDLINE_MAX + 1)
        except OSError:
            return None
        close = data.rindex(b")")
        comm = data[data.index(b"(") + 1 : close].decode(errors="replace")
        stat = data[close + 2 :].decode().split()
        words = raw[:CMDLINE_MAX].removesuffix(b"\0")
        argv = tuple(a.decode(errors="replace") for a in words.split(b"\0")) if words else ()
        cmdline = " ".join(a for a in argv if a) + ("…" if len(raw) > CMDLINE_MAX else "")
        return ProcessInfo(
            pid=pid, ppid=int(stat[1]), uid=-1, comm=comm, cmdline=cmdline,
            start_time=self._boot_time() + int(stat[19]) / CLK_TCK,
            tty_nr=int(stat[4]), sid=int(stat[3]), argv=argv,
        )

    def _boot_time(self) -> float:
        if self._btime is None:
            for line in (self._proc / "stat").read_text().splitlines():
                if line.startswith("btime "):
                    self._btime = float(line.split()[1])
                    break
            else:
                self._btime = 0.0
        return self._btime

    def tty_idle_since(self, tty: str) -> float | None:
        if tty.startswith("/") or ".." in tty.split("/"):
            return None  # a PAM_TTY naming something outside /dev is no tty to stat
        try:
            return os.stat(f"/dev/{tty}").st_atime
        except OSError:
            return None

    def close(self) -> None:
        for ref in list(self._fds):
            self.release(ref)
