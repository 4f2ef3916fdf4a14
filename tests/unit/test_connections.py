"""The connection caps: who is dropped to make room, and when memory is given back."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from logoutd.api import connections as mod
from logoutd.api.connections import (
    ROOT_LIMITS,
    USER_LIMITS,
    ConnectionTable,
    Limits,
    MemoryReturn,
    fitting_limits,
)
from logoutd.errors import LimitsExceeded


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        self.t += 1.0  # every event is a second apart: "oldest" is unambiguous
        return self.t


class World:
    def __init__(self, limits: Limits) -> None:
        self.table = ConnectionTable(limits, Clock())
        self.dropped: list[tuple[str, str]] = []

    def connect(self, uid: int, name: str) -> mod.Connection:
        return self.table.admit(uid, self._dropper(name))

    def _dropper(self, name: str) -> Callable[[str], None]:
        return lambda why: self.dropped.append((name, why))

    def names(self) -> list[str]:
        return [n for n, _ in self.dropped]


def test_per_uid_cap_drops_that_uids_oldest_idle_connection() -> None:
    w = World(Limits(per_uid=3, total=100))
    a = [w.connect(1000, f"a{i}") for i in range(3)]
    w.connect(1001, "b0")
    w.connect(1000, "a3")  # over uid 1000's cap: a0, its oldest, goes
    assert w.names() == ["a0"]
    assert "uid 1000 opened more than 3 connections" in w.dropped[0][1]
    assert w.table.count(1000) == 3 and w.table.count(1001) == 1 and len(w.table) == 4
    assert a[0] not in w.table.connections()


def test_oldest_means_least_recently_finished_request() -> None:
    w = World(Limits(per_uid=3, total=100))
    a = [w.connect(1000, f"a{i}") for i in range(3)]
    w.table.begin(a[0])
    w.table.end(a[0])  # a0 just finished a request: a1 is now the oldest
    w.connect(1000, "a3")
    assert w.names() == ["a1"]


def test_a_connection_inside_a_request_is_never_dropped() -> None:
    w = World(Limits(per_uid=2, total=100))
    a = [w.connect(1000, f"a{i}") for i in range(2)]
    w.table.begin(a[0])
    w.connect(1000, "a2")
    assert w.names() == ["a1"]  # a0 is busy, though older
    w.table.begin(w.table.connections()[-1])  # a2 busy too
    with pytest.raises(LimitsExceeded, match="all inside a request"):
        w.connect(1000, "a3")
    assert w.names() == ["a1"] and w.table.count(1000) == 2  # nothing dropped for nothing


def test_total_cap_drops_the_oldest_idle_of_anyone() -> None:
    w = World(Limits(per_uid=10, total=4))
    w.connect(1000, "a0")
    w.connect(1001, "b0")
    w.connect(1002, "c0")
    w.connect(1000, "a1")
    w.connect(1003, "d0")  # a fresh uid still gets in
    assert w.names() == ["a0"]
    assert "more than 4 connections are open" in w.dropped[0][1]
    assert len(w.table) == 4


def test_both_caps_at_once_drop_two_and_never_the_same_twice() -> None:
    w = World(Limits(per_uid=2, total=3))
    w.connect(1000, "a0")
    w.connect(1000, "a1")
    w.connect(1001, "b0")
    # uid 1000 at its cap (a0 goes) and then the table has room.
    w.connect(1000, "a2")
    assert w.names() == ["a0"] and len(w.table) == 3
    w2 = World(Limits(per_uid=2, total=2))
    x = w2.connect(1001, "b0")
    w2.connect(1000, "a0")
    w2.table.begin(x)
    w2.connect(1000, "a1")  # total full; b0 busy, so a0 is the one, once
    assert w2.names() == ["a0"] and len(w2.table) == 2


def test_remove_is_idempotent_and_forgets_empty_uids() -> None:
    w = World(USER_LIMITS)
    c = w.connect(1000, "a0")
    w.table.remove(c)
    w.table.remove(c)
    w.table.end(c)  # a late end() of a dropped connection is harmless
    assert len(w.table) == 0 and w.table.count(1000) == 0 and w.table.oldest_idle() is None


def test_a_flood_of_one_uid_holds_at_most_its_cap() -> None:
    w = World(USER_LIMITS)
    for i in range(3000):
        w.connect(1000, f"a{i}")
    assert w.table.count(1000) == USER_LIMITS.per_uid
    assert len(w.dropped) == 3000 - USER_LIMITS.per_uid
    w.connect(1001, "victim")
    assert w.table.count(1001) == 1


def test_root_counts_toward_the_total_only() -> None:
    w = World(Limits(per_uid=2, total=5))
    for i in range(5):
        w.connect(0, f"r{i}")
    assert not w.dropped
    w.connect(1000, "a0")  # the total still holds, for root's connections too
    assert w.names() == ["r0"]


def test_root_socket_has_one_generous_cap() -> None:
    w = World(ROOT_LIMITS)
    for i in range(ROOT_LIMITS.total):
        w.connect(0, f"r{i}")
    assert not w.dropped
    w.connect(0, "one more")
    assert w.names() == ["r0"]


def test_caps_fit_a_low_fd_limit() -> None:
    assert fitting_limits(USER_LIMITS, 20000, 0.8) == USER_LIMITS
    assert fitting_limits(ROOT_LIMITS, 20000, 0.2) == ROOT_LIMITS
    low = fitting_limits(USER_LIMITS, 1024, 0.8)
    assert low.total == 204 and low.per_uid == USER_LIMITS.per_uid
    tiny = fitting_limits(USER_LIMITS, 40, 0.8)
    assert tiny.total == 8 and tiny.per_uid == 8


class Timers:
    def __init__(self) -> None:
        self.now = 0.0
        self.pending: list[tuple[float, Callable[[], None]]] = []
        self.released = 0

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self.pending.append((self.now + delay, fn))

    def run_until(self, t: float) -> None:
        self.now = t
        due = [p for p in self.pending if p[0] <= t]
        self.pending = [p for p in self.pending if p[0] > t]
        for _, fn in due:
            fn()

    def release(self) -> None:
        self.released += 1


def test_memory_is_released_once_a_flood_is_over() -> None:
    t = Timers()
    m = MemoryReturn(t.release, t.call_later, lambda: t.now)
    for _ in range(10):  # ordinary traffic: never
        m.opened()
        m.closed()
    t.run_until(100)
    assert t.released == 0 and not t.pending
    for _ in range(mod.TRIM_AFTER_ACCEPTS + 100):
        m.opened()
    for _ in range(80):
        m.closed()
    assert not t.pending  # still flooded
    for _ in range(mod.TRIM_AFTER_ACCEPTS + 100 - 80):
        m.closed()
    assert len(t.pending) == 1  # one release, scheduled once
    t.run_until(t.now + mod.TRIM_DELAY)
    assert t.released == 1 and m.accepted == 0


def test_memory_release_is_rate_limited_and_skipped_if_the_flood_returns() -> None:
    t = Timers()
    m = MemoryReturn(t.release, t.call_later, lambda: t.now)

    def burst(n: int) -> None:
        for _ in range(n):
            m.opened()
        for _ in range(n):
            m.closed()

    burst(mod.TRIM_AFTER_ACCEPTS)
    t.run_until(t.now + mod.TRIM_DELAY)
    assert t.released == 1
    burst(mod.TRIM_AFTER_ACCEPTS)  # right after: waits for TRIM_INTERVAL
    t.run_until(t.now + mod.TRIM_DELAY)
    assert t.released == 1 and len(t.pending) == 1
    for _ in range(mod.TRIM_LOW_WATER + 1):  # the flood is back when the timer fires
        m.opened()
    t.run_until(t.now + mod.TRIM_INTERVAL)
    assert t.released == 1
    for _ in range(mod.TRIM_LOW_WATER + 1):
        m.closed()
    t.run_until(t.now + mod.TRIM_INTERVAL)
    assert t.released == 2
