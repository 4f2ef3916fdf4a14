"""The one allocator of numbers over the counter file: session ids c<N> and unit names run-u<N>."""

from __future__ import annotations

from logoutd.core.ports import StateStore

BLOCK = 64  # numbers reserved per write of the counter file; a restart skips the unused rest


class Counter:
    """Hands out numbers never handed out before, across restarts (the store persists them)."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._next, self._limit = 0, 0

    def take(self) -> int:
        if self._next >= self._limit:
            self._next, self._limit = self._store.reserve_counter(BLOCK)
        number = self._next
        self._next += 1
        return number
