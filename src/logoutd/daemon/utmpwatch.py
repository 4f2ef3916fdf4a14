"""Watching utmp (inotify) and handing its entries to core/utmpttys.py.

As logind's manager_connect_utmp(): the file is watched for changes, and the watch is set up
again when it is replaced or removed. Unlike logind, its directory is watched too, so a utmp
created or renamed into place later is found at once, not at the next login. Reading never
blocks the loop for long: utmp is a small local file, read without glibc's lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from logoutd.core.manager import Manager
from logoutd.core.sessions import Session
from logoutd.core.users import User
from logoutd.core.utmpttys import apply_utmp
from logoutd.system.inotify import IN_MODIFY, IN_MOVED_TO, Inotify
from logoutd.system.utmp import user_processes

log = logging.getLogger("logoutd")

IN_ATTRIB = 0x00000004
IN_CREATE = 0x00000100
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800


class UtmpWatch:
    """Re-reads utmp when it changes and when a session starts (its entry may be there
    already); a manager Listener."""

    def __init__(self, path: Path, inotify: Inotify, manager: Manager,
                 guard: Callable[[Callable[[], None]], Callable[[], None]]) -> None:
        self.path = path
        self.inotify = inotify
        self.manager = manager
        self._read = guard(self.read)
        self._changed = guard(self._on_change)
        self._file_wd: int | None = None
        self._dir_wd: int | None = None
        self._pending = False
        self._failed = False

    def start(self) -> None:
        try:  # a utmp created or renamed into place later (the file's own watch sees neither)
            self._dir_wd = self.inotify.add(str(self.path.parent), self._changed,
                                            IN_CREATE | IN_MOVED_TO)
        except OSError as e:
            log.warning("Cannot watch %s for %s: %s", self.path.parent, self.path.name,
                        e.strerror or e)
        self._connect()
        self._read()
        self.manager.listeners.append(self)

    def close(self) -> None:
        if self in self.manager.listeners:
            self.manager.listeners.remove(self)
        for wd in (self._file_wd, self._dir_wd):
            if wd is not None:
                self.inotify.remove(wd)
        self._file_wd = self._dir_wd = None

    def read(self) -> None:
        self._pending = False
        try:
            entries = user_processes(self.path)
        except OSError as e:
            if not self._failed:
                log.warning("Cannot read %s, sessions get no tty from it: %s", self.path,
                            e.strerror or e)
            self._failed = True
            return
        self._failed = False
        apply_utmp(self.manager, entries)

    def _connect(self) -> None:
        """Watch the file that is at the path now (none while it does not exist)."""
        if self._file_wd is not None:
            self.inotify.remove(self._file_wd)
            self._file_wd = None
        try:
            self._file_wd = self.inotify.add(
                str(self.path), self._changed,
                IN_MODIFY | IN_MOVE_SELF | IN_DELETE_SELF | IN_ATTRIB)
        except FileNotFoundError:
            log.debug("%s does not exist (yet).", self.path)
        except OSError as e:
            log.warning("Cannot watch %s, sessions get no tty from it: %s", self.path,
                        e.strerror or e)

    def _on_change(self) -> None:
        # The event's mask is not passed on: set the watch up again each time (cheap), so a
        # replaced or removed file is followed.
        self._connect()
        self.read()

    # -- the manager's events: a session that starts after sshd wrote its entry ----------

    def session_new(self, session: Session) -> None:
        if not self._pending:
            self._pending = True
            asyncio.get_running_loop().call_soon(self._read)

    def session_removed(self, session: Session) -> None:
        pass

    def user_new(self, user: User) -> None:
        pass

    def user_removed(self, user: User) -> None:
        pass
