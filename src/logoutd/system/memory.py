"""Giving freed memory back to the system, and reading how much the daemon holds."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable
from functools import cache

log = logging.getLogger("logoutd")


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None (musl and others have no such call)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]  # type: ignore[attr-defined]
    trim.restype = ctypes.c_int  # type: ignore[attr-defined]
    return trim


def rss_kib() -> int:
    """VmRSS of this process in KiB (0 if /proc cannot say)."""
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def release_memory() -> None:
    """Collect cycles, then ask glibc to return free heap pages (a flood's buffers freed by
    Python stay in malloc's arenas otherwise, and RSS never comes down)."""
    before = rss_kib()
    gc.collect()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    log.debug("Returned freed memory to the system: RSS %d → %d KiB.", before, rss_kib())
