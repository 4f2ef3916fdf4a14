"""/proc helpers: process identity (pid + start time), liveness, cgroup, polling."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """A polled condition did not become true before its deadline."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    what: str = "condition",
    interval: float = 0.05,
    details: Callable[[], str] | None = None,
) -> T:
    """Poll `predicate` until it returns something truthy; return it or raise WaitTimeout."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except AssertionError:
            raise
        except Exception as e:  # a race (process gone, daemon restarting): try again
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f"; last error: {last_exc!r}" if last_exc else ""
            if details is not None:
                try:
                    extra += f"\n{details()}"
                except Exception as e:
                    extra += f"\n(details failed: {e!r})"
            raise WaitTimeout(f"timed out after {timeout:g} s waiting for {what}{extra}")
        time.sleep(interval)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'.
    rest = data[data.rindex(")") + 2 :].split()
    return rest  # rest[0] = state, rest[1] = ppid, rest[19] = starttime


@dataclass(frozen=True)
class Proc:
    """A process identified by pid *and* start time, so a reused pid is never mistaken for it."""

    pid: int
    start: int
    label: str = ""

    @classmethod
    def of(cls, pid: int, label: str = "") -> Proc:
        fields = _stat_fields(pid)
        if fields is None:
            raise ProcessLookupError(f"pid {pid} ({label}) does not exist")
        return cls(pid, int(fields[19]), label)

    def alive(self) -> bool:
        """True while the process exists and has not exited (a zombie counts as gone)."""
        fields = _stat_fields(self.pid)
        return fields is not None and int(fields[19]) == self.start and fields[0] not in ("Z", "X")

    def cgroup(self) -> str | None:
        return cgroup_of(self.pid) if self.alive() else None

    def describe(self) -> str:
        state = "alive" if self.alive() else "gone"
        return f"{self.label or 'pid'} {self.pid} ({state}, cgroup {self.cgroup()})"

    def __str__(self) -> str:
        return f"{self.label}:{self.pid}" if self.label else str(self.pid)


def cgroup_of(pid: int) -> str | None:
    """The cgroup v2 path (relative to the cgroup2 mount, leading '/') of `pid`, or None."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def alive(procs: Iterable[Proc]) -> list[Proc]:
    return [p for p in procs if p.alive()]


def status_field(pid: int, name: str) -> str | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def pids_of_real_uid(uid: int) -> list[int]:
    """Every live, non-zombie pid whose *real* uid is `uid` (from /proc/PID/status)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        uids = status_field(pid, "Uid")
        state = status_field(pid, "State")
        if uids is None or state is None or state.startswith(("Z", "X")):
            continue
        if int(uids.split()[0]) == uid:
            found.append(pid)
    return found


def kill_uid(uid: int, timeout: float = 10.0) -> list[int]:
    """SIGKILL, pid by pid, every process whose real uid is `uid` (never 0), until none is left."""
    if uid == 0:
        raise ValueError("refusing to kill by uid 0")
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in pids_of_real_uid(uid) if p != 1 and p != os.getpid()]
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes of uid {uid} survive SIGKILL: {pids}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def children_map() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None:
                tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def descendants(pid: int) -> list[int]:
    """All current descendants of `pid` (children first, breadth first)."""
    tree = children_map()
    out: list[int] = []
    todo = list(tree.get(pid, []))
    while todo:
        child = todo.pop(0)
        out.append(child)
        todo.extend(tree.get(child, []))
    return out


def kill_tree(root: Proc, timeout: float = 10.0) -> None:
    """SIGKILL a process we started and all its current descendants, by pid."""
    if root.pid <= 1:
        raise ValueError("refusing to kill pid <= 1")
    procs: list[Proc] = []
    for pid in descendants(root.pid):
        with contextlib.suppress(ProcessLookupError):
            procs.append(Proc.of(pid))
    if root.alive():
        procs.insert(0, root)
    for p in procs:
        if p.alive() and p.pid > 1:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
    wait_for(lambda: not alive(procs), timeout, f"process tree of {root} to die")


def signal_proc(proc: Proc, sig: int) -> None:
    """Send `sig` to `proc` only if it is still the same process."""
    if proc.pid <= 1:
        raise ValueError("refusing to signal pid <= 1")
    if proc.alive():
        os.kill(proc.pid, sig)
