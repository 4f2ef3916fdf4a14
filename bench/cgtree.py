"""The benchmark's own cgroup2 subtree: fill, kill, watch for emptiness, remove (the mount and
the pid list are the harness': tests.integration.harness.cgroups)."""

from __future__ import annotations

import errno
import os
import select
import time
from collections.abc import Iterable
from pathlib import Path


def populated(path: Path) -> bool:
    """Unlike the harness' cgroups.populated, a cgroup that is gone is not populated."""
    try:
        return b"populated 1" in (path / "cgroup.events").read_bytes()
    except FileNotFoundError:
        return False


def move(path: Path, pids: Iterable[int]) -> None:
    """Write each pid into cgroup.procs (one write per pid, as the kernel wants)."""
    fd = os.open(path / "cgroup.procs", os.O_WRONLY)
    try:
        for pid in pids:
            os.write(fd, str(pid).encode())
    finally:
        os.close(fd)


def kill(path: Path) -> None:
    with open(path / "cgroup.kill", "w") as f:
        f.write("1")


class EmptyWatch:
    """Open before the measured action; `wait()` returns perf_counter() when `populated 0` shows.

    cgroup.events raises POLLPRI on every change; a 1 ms timeout re-reads it anyway. If the
    cgroup is removed meanwhile (the daemon removes an empty scope), it was empty: done.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path / "cgroup.events", os.O_RDONLY)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLPRI | select.POLLERR)
        self.removed = False

    def _empty(self) -> bool:
        try:
            os.lseek(self._fd, 0, os.SEEK_SET)
            return b"populated 0" in os.read(self._fd, 4096)
        except OSError as e:
            if e.errno in (errno.ENODEV, errno.ENOENT):
                self.removed = True
                return True
            raise

    def wait(self, timeout: float) -> float:
        deadline = time.perf_counter() + timeout
        while True:
            if self._empty():
                return time.perf_counter()
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.path} still populated after {timeout:g} s")
            self._poll.poll(1)

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> EmptyWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_empty(path: Path, timeout: float) -> None:
    with EmptyWatch(path) as watch:
        watch.wait(timeout)


def remove_tree(top: Path) -> None:
    """rmdir depth first (cgroup directories hold only kernel files)."""
    if not top.exists():
        return
    dirs = [Path(d) for d, _subdirs, _files in os.walk(top)]
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        for attempt in range(200):
            try:
                d.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as e:
                if e.errno != errno.EBUSY or attempt == 199:
                    raise
                time.sleep(0.01)  # a dying task can keep a cgroup busy for a moment


def destroy(top: Path, timeout: float = 30.0) -> None:
    """Kill everything in the subtree through cgroup.kill, wait for `populated 0`, remove it."""
    if not top.exists():
        return
    kill(top)
    wait_empty(top, timeout)
    remove_tree(top)
