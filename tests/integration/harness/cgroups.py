"""The cgroup2 mount and per-test subtrees `<mount>/logoutd-test-<hex>`."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

PREFIX = "logoutd-test-"


def cgroup2_mount() -> Path | None:
    """The first cgroup2 mount point in /proc/mounts (hybrid machines: /sys/fs/cgroup/unified)."""
    with open("/proc/mounts") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                return Path(fields[1].replace("\\040", " "))
    return None


def populated(path: Path) -> bool:
    events = (path / "cgroup.events").read_text()
    for line in events.splitlines():
        key, _, value = line.partition(" ")
        if key == "populated":
            return value.strip() == "1"
    raise RuntimeError(f"no 'populated' in {path}/cgroup.events")


def procs(path: Path) -> list[int]:
    """Pids directly in `path` (not in its children)."""
    try:
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    except FileNotFoundError:
        return []


def all_procs(path: Path) -> dict[str, list[int]]:
    """Pids in `path` and every cgroup below it, by directory."""
    out: dict[str, list[int]] = {}
    for dirpath, _, _ in os.walk(path):
        pids = procs(Path(dirpath))
        if pids:
            out[dirpath] = pids
    return out


def subdirs(path: Path) -> list[Path]:
    """Every cgroup below `path` (not `path` itself), parents before children."""
    out: list[Path] = []
    if not path.is_dir():
        return out
    for dirpath, dirnames, _ in os.walk(path):
        for d in sorted(dirnames):
            out.append(Path(dirpath) / d)
    return out


def create_test_root(mount: Path, hexid: str) -> Path:
    root = mount / f"{PREFIX}{hexid}"
    root.mkdir(mode=0o755)
    return root


def kill_subtree(root: Path, timeout: float = 15.0) -> None:
    """Write "1" to cgroup.kill of a test subtree until cgroup.events says "populated 0"."""
    if not root.name.startswith(PREFIX):
        raise ValueError(f"refusing to kill {root}: not a test cgroup")
    deadline = time.monotonic() + timeout
    kill_file = root / "cgroup.kill"
    while True:
        try:
            if not populated(root):
                return
        except FileNotFoundError:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{root} still populated after cgroup.kill: {all_procs(root)}")
        kill_file.write_text("1")
        time.sleep(0.05)


def destroy_test_root(root: Path, timeout: float = 15.0) -> None:
    """Kill everything in the subtree atomically, wait until it is empty, rmdir depth first."""
    if not root.name.startswith(PREFIX):
        raise ValueError(f"refusing to destroy {root}: not a test cgroup")
    if not root.exists():
        return
    kill_subtree(root, timeout)
    deadline = time.monotonic() + timeout
    # Depth first: children before parents.  A concurrent rmdir by the daemon is fine.
    while True:
        leftovers = []
        for path in reversed([root, *subdirs(root)]):
            try:
                path.rmdir()
            except FileNotFoundError:
                pass
            except OSError as e:
                if e.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise
                leftovers.append((path, e))
        if not leftovers:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"cannot remove {leftovers}")
        time.sleep(0.05)
