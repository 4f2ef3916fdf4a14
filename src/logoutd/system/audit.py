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
AUDIT_ACCEPTED = ("a regular file, or a new file's name in an existing directory "
                  "(not a symbolic link, directory, FIFO or device)")


def audit_path_problem(path: str) -> str | None:
    """Why AuditLog=path cannot be opened as AuditFile does, or None; it opens and creates nothing."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        parent = os.path.dirname(path) or "/"
        try:
            if not stat.S_ISDIR(os.stat(parent).st_mode):
                return f"{parent} is not a directory"
        except FileNotFoundError:
            return f"its directory {parent} does not exist"
        except OSError as e:
            return f"its directory {parent} cannot be looked at ({e.strerror})"
        return None
    except OSError as e:
        return f"it cannot be looked at ({e.strerror})"
    if stat.S_ISLNK(mode):
        return "it is a symbolic link (refused, so that the log cannot be redirected)"
    if stat.S_ISDIR(mode):
        return "it is a directory"
    if not stat.S_ISREG(mode):
        return "it is not a regular file"
    return None


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

    def configure(self, path: str | None) -> str | None:
        """(Re)open after a reload; a file that cannot be opened is a warning (returned), not a crash."""
        if path == self._path and (path is None or self._file is not None):
            return None
        self.close()
        self._path = path
        if path is None:
            return None
        problem = self._open(path)
        if problem is not None:
            log.warning("AuditLog=%s: %s; auditing to syslog only.", path, problem)
        return problem

    def _open(self, path: str) -> str | None:
        try:
            # No link, no FIFO (whose open would wait for a reader): a regular file or nothing.
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                         | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
        except OSError as e:
            return audit_path_problem(path) or f"it cannot be opened ({e.strerror})"
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return audit_path_problem(path) or "it is not a regular file"
        os.set_blocking(fd, True)
        self._file = os.fdopen(fd, "a", buffering=1)
        return None

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
