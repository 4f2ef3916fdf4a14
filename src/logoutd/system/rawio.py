"""Small kernel files (cgroup.procs, cgroup.events, /proc/PID/stat) read with open, read, close.

Python's `open()` adds an fstat, an ioctl and two lseeks to every file, and `Path.read_bytes()`
more: on the stop round's path, before its first signal, they were a third of the daemon's
system calls.
"""

from __future__ import annotations

import os

CHUNK = 65536


def read_file(path: str | os.PathLike[str], limit: int = -1) -> bytes:
    """The whole file, or its first `limit` bytes; OSError as open() raises it."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        left = limit
        while left != 0:
            chunk = os.read(fd, CHUNK if left < 0 else left)
            if not chunk:
                break
            chunks.append(chunk)
            if left > 0:
                left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
