"""A minimal inotify binding (ctypes): one fd for every watched cgroup.events file."""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Callable

IN_MODIFY = 0x00000002
IN_MOVED_TO = 0x00000080
IN_IGNORED = 0x00008000
_EVENT = struct.Struct("iIII")

_libc = ctypes.CDLL(None, use_errno=True)


class Inotify:
    """Watches files for modification (or directories for other events); `dispatch()` runs the
    callbacks of the ready watches."""

    def __init__(self) -> None:
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._callbacks: dict[int, Callable[[], None]] = {}

    def add(self, path: str, callback: Callable[[], None], mask: int = IN_MODIFY) -> int:
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        self._callbacks[wd] = callback
        return int(wd)

    def remove(self, wd: int) -> None:
        if self._callbacks.pop(wd, None) is not None:
            _libc.inotify_rm_watch(self.fd, wd)  # EINVAL when the file is already gone: fine

    def dispatch(self) -> None:
        ready: list[int] = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = _EVENT.unpack_from(data, offset)
                offset += _EVENT.size + length
                if mask & IN_IGNORED:
                    self._callbacks.pop(wd, None)
                elif wd not in ready:
                    ready.append(wd)
        for wd in ready:
            callback = self._callbacks.get(wd)
            if callback is not None:
                callback()

    def close(self) -> None:
        os.close(self.fd)
