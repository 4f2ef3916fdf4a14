"""Reference FIFOs: pam_systemd keeps the write end for the life of the PAM process.

logind's session_create_fifo(): `mkfifo <dir>/<id>.ref`, open the read end, then a write end that
goes back in the CreateSession reply. When the last writer closes (the PAM process exited or
died) the read end hangs up, and the session stops as at a logout. The files live in the
runtime dir, so after a daemon restart the read ends are reopened: a FIFO with no writer left
reads EOF at once, which is the hang-up the daemon missed while it was down.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger("logoutd")
SUFFIX = ".ref"


class ReferenceFifos:
    def __init__(self, directory: Path, loop: asyncio.AbstractEventLoop,
                 on_hangup: Callable[[str], None]) -> None:
        self.directory = directory
        self._loop = loop
        self._on_hangup = on_hangup
        self._readers: dict[str, int] = {}

    def path(self, session_id: str) -> Path:
        return self.directory / f"{session_id}{SUFFIX}"

    def create(self, session_id: str) -> int:
        """A new FIFO for the session; returns the write end (the caller sends, then closes it)."""
        self.directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        path = self.path(session_id)
        self.drop(session_id)
        os.mkfifo(path, 0o600)
        # The read end first: opening a write end with no reader fails with ENXIO.
        rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            wfd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            os.close(rfd)
            path.unlink(missing_ok=True)
            raise
        self._watch(session_id, rfd)
        return wfd

    def reopen(self, live: Iterable[str]) -> list[str]:
        """After a restart: watch the FIFO of every live session; remove the others' files.

        Returns the sessions whose FIFO has no writer any more (their PAM process is gone).
        """
        live = set(live)
        hung_up: list[str] = []
        if not self.directory.is_dir():
            return hung_up
        for path in sorted(self.directory.iterdir()):
            session_id = path.name.removesuffix(SUFFIX)
            if not path.name.endswith(SUFFIX) or session_id not in live:
                path.unlink(missing_ok=True)
                continue
            try:
                if not stat.S_ISFIFO(path.lstat().st_mode):
                    raise OSError(f"{path} is not a FIFO")
                rfd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError as e:
                log.warning("Cannot reopen the reference FIFO of session %s: %s", session_id, e)
                path.unlink(missing_ok=True)
                continue
            if _eof(rfd):  # no writer: the PAM process went away while logoutd was down
                os.close(rfd)
                path.unlink(missing_ok=True)
                hung_up.append(session_id)
                continue
            self._watch(session_id, rfd)
        return hung_up

    def drop(self, session_id: str) -> None:
        """The session is gone: stop watching, remove the file."""
        self._unwatch(session_id)
        self.path(session_id).unlink(missing_ok=True)

    def close(self) -> None:
        """Daemon shutdown: stop watching but keep the files, so the next start reopens them."""
        for session_id in list(self._readers):
            self._unwatch(session_id)

    def watched(self) -> list[str]:
        return sorted(self._readers)

    def _watch(self, session_id: str, rfd: int) -> None:
        self._readers[session_id] = rfd
        self._loop.add_reader(rfd, self._readable, session_id, rfd)

    def _unwatch(self, session_id: str) -> None:
        rfd = self._readers.pop(session_id, None)
        if rfd is not None:
            self._loop.remove_reader(rfd)
            os.close(rfd)

    def _readable(self, session_id: str, rfd: int) -> None:
        if self._readers.get(session_id) != rfd or not _eof(rfd):
            return  # bytes written into it mean nothing (logind ignores them too)
        log.debug("Reference FIFO of session %s hung up.", session_id)
        self.drop(session_id)
        self._on_hangup(session_id)


def _eof(rfd: int) -> bool:
    """True when every writer has closed: read() returns b"" (no writer) rather than EAGAIN."""
    try:
        while True:
            chunk = os.read(rfd, 4096)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
