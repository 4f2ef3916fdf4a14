"""One daemon per runtime dir: an flock on RUNTIME_DIR/logoutd.lock held for the daemon's life."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from logoutd.errors import LogoutdError, already_running

LOCK_NAME = "logoutd.lock"


class AlreadyRunning(LogoutdError):
    """Another logoutd holds the runtime dir's lock; this one changed nothing."""

    exit_status = 1


@contextlib.contextmanager
def runtime_lock(runtime_dir: Path) -> Iterator[Path]:
    """Hold the lock while the block runs; raise AlreadyRunning naming the holder's pid."""
    path = runtime_dir / LOCK_NAME
    if runtime_dir.exists() and not runtime_dir.is_dir():
        raise LogoutdError(f"--runtime-dir {runtime_dir}: not a directory.")
    try:
        runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
        # Never unlinked: a daemon that unlinked it at exit could let two others lock two files.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    except PermissionError:
        raise  # main() says "permission denied (logoutd runs as root)"
    except OSError as e:
        raise LogoutdError(f"--runtime-dir {runtime_dir}: cannot create {path}: "
                           f"{e.strerror or e}.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise AlreadyRunning(already_running(
                f"runtime dir {runtime_dir} ({path})", _holder(fd),
                "Stop that logoutd first, or give this one another --runtime-dir.")) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        os.close(fd)


def _holder(fd: int) -> str:
    """"logoutd pid N" from the pid the holder wrote (it may not have written it yet)."""
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return f"logoutd pid {text}" if text.isdigit() else "another logoutd (pid not yet written)"
