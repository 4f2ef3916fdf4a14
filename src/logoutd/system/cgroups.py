"""The managed cgroup2 subtree: create, move, signal, kill, watch for emptiness, remove."""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from logoutd.errors import CgroupError, ProcessGone
from logoutd.system.inotify import Inotify
from logoutd.system.rawio import read_file

log = logging.getLogger("logoutd")

# A signal round re-reads cgroup.procs until no new pid appears; a fork storm that ignores the
# signal would keep it going (and the single-threaded daemon with it). So no pass starts after
# this many passes or seconds: what is left then is SIGKILLed by cgroup.kill at the deadline.
SIGNAL_ROUND_MAX_PASSES = 32
SIGNAL_ROUND_MAX_SEC = 0.25


@dataclass(frozen=True)
class SignalRound:
    signalled: int  # distinct pids signalled
    passes: int  # reads of the pid list
    bounded: bool  # ended by a bound, not by a pass that found no new pid


def signal_round(read_pids: Callable[[], Iterable[int]], send: Callable[[int], None],
                 clock: Callable[[], float] = time.monotonic,
                 max_passes: int = SIGNAL_ROUND_MAX_PASSES,
                 max_sec: float = SIGNAL_ROUND_MAX_SEC, *,
                 first: Iterable[int] | None = None, seen: Iterable[int] = ()) -> SignalRound:
    """Send to every pid read_pids() gives, re-reading until a pass finds no new pid or a bound
    is reached (the first pass always runs to its end). `first`: the first pass's pids, read
    by the caller just before; `seen`: pids the caller signalled already (counted, not sent to
    again)."""
    done: set[int] = set(seen)
    start = clock()
    passes = 0
    while True:
        passes += 1
        source = first if passes == 1 and first is not None else read_pids()
        new = [p for p in source if p not in done]
        if not new:
            return SignalRound(len(done), passes, bounded=False)
        for pid in new:
            send(pid)
        done.update(new)
        if passes >= max_passes or clock() - start >= max_sec:
            return SignalRound(len(done), passes, bounded=True)


def _signallable(pids: Iterable[int]) -> Iterable[int]:
    """Never init, never the daemon itself (a cgroup given by mistake could hold either)."""
    me = os.getpid()
    return (p for p in pids if p > 1 and p != me)


def _sender(signals: Sequence[int]) -> Callable[[int], None]:
    """Sends each signal in turn to a pid; one that has exited gets no more."""
    kill = os.kill

    def send(pid: int) -> None:
        for signo in signals:
            try:
                kill(pid, signo)
            except ProcessLookupError:
                return

    return send


def find_cgroup2_mount(mounts: str = "/proc/mounts") -> Path:
    """The cgroup2 mount point: /sys/fs/cgroup on unified hosts, …/unified on hybrid ones."""
    with open(mounts) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                return Path(fields[1].replace("\\040", " "))
    raise CgroupError("No cgroup2 filesystem is mounted (see /proc/mounts); logoutd needs one.")


def mount_of(path: Path, mounts: str = "/proc/mounts") -> Path:
    """The cgroup2 mount that contains path (the longest matching mount point)."""
    best: Path | None = None
    resolved = path.resolve()
    with open(mounts) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                mount = Path(fields[1].replace("\\040", " "))
                inside = resolved == mount or mount in resolved.parents
                if inside and (best is None or len(str(mount)) > len(str(best))):
                    best = mount
    if best is None:
        raise CgroupError(f"{path} is not inside a cgroup2 filesystem.")
    return best


class CgroupTree:
    """Paths given to methods are relative to the managed root ('user.slice/…')."""

    def __init__(self, root: Path, inotify: Inotify | None = None) -> None:
        if not root.exists():
            raise CgroupError(f"{root} does not exist (create it with mkdir inside the cgroup2 "
                              "mount, or give another --cgroup-root).")
        if not (root / "cgroup.procs").exists():
            raise CgroupError(f"{root} is not a cgroup2 directory.")
        self.root = root
        mount = mount_of(root)
        rel = os.path.relpath(root.resolve(), mount)
        self._root_in_mount = "/" if rel == "." else "/" + rel
        self._inotify = inotify
        self._watches: dict[str, int] = {}

    @property
    def root_in_mount(self) -> str:
        return self._root_in_mount

    def _dir(self, path: str) -> Path:
        if path.startswith("/") or ".." in path.split("/"):
            raise CgroupError(f"Refusing cgroup path outside the managed root: {path!r}")
        return self.root / path

    def create(self, path: str) -> None:
        try:
            self._dir(path).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CgroupError(f"Cannot create cgroup {self._dir(path)}: {e.strerror}") from e

    def exists(self, path: str) -> bool:
        return self._dir(path).is_dir()

    def move(self, path: str, pid: int) -> None:
        try:
            fd = os.open(self._dir(path) / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(fd, str(pid).encode())
            finally:
                os.close(fd)
        except ProcessLookupError:
            raise ProcessGone(f"Process {pid} has exited.") from None
        except OSError as e:
            if e.errno == errno.ESRCH:
                raise ProcessGone(f"Process {pid} has exited.") from None
            raise CgroupError(f"Cannot move {pid} into {self._dir(path)}: {e.strerror}") from e

    def _walk(self, path: str) -> list[str]:
        """The directory at path and every cgroup below it, parents first (one scandir each:
        the entries' d_type says which are directories)."""
        found = [str(self._dir(path))]
        for directory in found:  # grows while it is walked
            try:
                with os.scandir(directory) as entries:
                    found.extend(e.path for e in entries if e.is_dir(follow_symlinks=False))
            except (FileNotFoundError, NotADirectoryError):
                continue
        return found

    def pids(self, path: str) -> list[int]:
        pids: list[int] = []
        for directory in self._walk(path):
            try:
                pids.extend(map(int, read_file(f"{directory}/cgroup.procs").split()))
            except FileNotFoundError:
                continue
        return pids

    def is_populated(self, path: str) -> bool:
        try:
            return b"populated 1" in read_file(self._dir(path) / "cgroup.events")
        except FileNotFoundError:
            return False

    def signal(self, pids: Iterable[int], signals: Sequence[int]) -> None:
        """Send the signals to these pids only (each pid all of them, in order); no re-read."""
        send = _sender(signals)
        for pid in _signallable(pids):
            send(pid)

    def signal_all(self, path: str, signals: Sequence[int], first: Sequence[int] | None = None,
                   seen: Sequence[int] = ()) -> int:
        """Signal every process; re-read cgroup.procs until a pass finds no new pid (forks),
        within SIGNAL_ROUND_MAX_PASSES and SIGNAL_ROUND_MAX_SEC. `first` and `seen` as for
        `signal_round`; the count includes `seen`."""
        result = signal_round(lambda: _signallable(self.pids(path)), _sender(signals),
                              first=None if first is None else _signallable(first), seen=seen)
        if result.bounded:
            log.warning("Signalling %s: new processes kept appearing (a fork storm?); stopped "
                        "after %d passes and %d processes. What is left is killed at the stop "
                        "deadline (cgroup.kill).", path, result.passes, result.signalled)
        return result.signalled

    def kill(self, path: str) -> None:
        try:
            with open(self._dir(path) / "cgroup.kill", "w") as f:
                f.write("1")
        except FileNotFoundError:
            return
        except OSError as e:
            raise CgroupError(f"Cannot kill {self._dir(path)}: {e.strerror}") from e

    def remove(self, path: str) -> bool:
        for directory in sorted(self._walk(path), key=lambda d: d.count("/"), reverse=True):
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                continue
            except OSError as e:
                if e.errno == errno.EBUSY:
                    return False
                raise CgroupError(f"Cannot remove {directory}: {e.strerror}") from e
        return True

    def children(self, path: str) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self._dir(path)) if e.is_dir())
        except FileNotFoundError:
            return []

    def watch_empty(self, path: str, callback: Callable[[], None]) -> None:
        if self._inotify is None or path in self._watches:
            return
        try:
            self._watches[path] = self._inotify.add(str(self._dir(path) / "cgroup.events"), callback)
        except FileNotFoundError:
            callback()  # already gone: let the owner collect it

    def unwatch(self, path: str) -> None:
        wd = self._watches.pop(path, None)
        if wd is not None and self._inotify is not None:
            self._inotify.remove(wd)
