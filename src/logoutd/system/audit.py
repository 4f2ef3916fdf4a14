"""The audit trail: one JSON object per line at AuditLog=, and a line to syslog (authpriv)."""

from __future__ import annotations

import json
import logging
import os
import stat
import syslog
import time
from typing import Any, TextIO

log = logging.getLogger("logoutd")


class AuditFile:
    """Records go to syslog always and to the JSON-lines file when AuditLog= names one."""

    def __init__(self, path: str | None = None) -> None:
        self._path: str | None = None
        self._file: TextIO | None = None
        syslog.openlog("logoutd", syslog.LOG_PID, syslog.LOG_AUTHPRIV)
        self.configure(path)

    @property
    def detailed(self) -> bool:
        """With a file, per-process records (leftovers, what was killed) are gathered too."""
        return self._file is not None

    def configure(self, path: str | None) -> None:
        """(Re)open after a reload; a file that cannot be opened is a warning, not a crash."""
        if path == self._path and (path is None or self._file is not None):
            return
        self.close()
        self._path = path
        if path is None:
            return
        try:
            # No link, no FIFO (whose open would wait for a reader): a regular file or nothing.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                         | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        except OSError as e:
            log.warning("AuditLog=%s: cannot open it (%s); auditing to syslog only.", path, e.strerror)
            return
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            log.warning("AuditLog=%s: not a regular file; auditing to syslog only.", path)
            return
        os.set_blocking(fd, True)
        self._file = os.fdopen(fd, "a", buffering=1)

    def record(self, event: str, **fields: Any) -> None:
        entry = {"time": round(time.time(), 6), "event": event, **fields}
        line = json.dumps(entry, sort_keys=False, default=str)
        if self._file is not None:
            try:
                self._file.write(line + "\n")
            except OSError as e:
                log.warning("AuditLog=%s: write failed (%s).", self._path, e.strerror)
        if event != "leftover":  # per-process records would flood syslog; they are in the file
            syslog.syslog(syslog.LOG_INFO, f"audit {line}")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
