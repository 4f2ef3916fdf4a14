"""Who is connected: caps per uid and in total, the idle connection that makes room, and when
to give a flood's memory back (DESIGN §10: the daemon never waits on a user)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from logoutd.errors import LimitsExceeded

# api.sock: every user may connect. A uid past its cap, or anyone past the total, makes room by
# dropping the oldest idle connection (of that uid, resp. of anyone), so a fresh client always
# gets in and no uid can hold more than USER_CONNECTIONS_PER_UID descriptors of the daemon.
# Root is not a user here: its connections on api.sock count toward the total only.
USER_CONNECTIONS_PER_UID = 32
USER_CONNECTIONS_MAX = 1024
# root.sock (uid 0 only: PAM's hook and root's logoutctl): one generous cap.
ROOT_CONNECTIONS_MAX = 256
# The caps together use at most 1/FD_HEADROOM_FACTOR of the daemon's fd limit (see fitting_limits).
FD_HEADROOM_FACTOR = 4

# After a burst of at least TRIM_AFTER_ACCEPTS connections, once no more than TRIM_LOW_WATER
# are open again, freed memory goes back to the system (gc, then malloc_trim), TRIM_DELAY after
# the count fell and at most once per TRIM_INTERVAL.
TRIM_AFTER_ACCEPTS = 256
TRIM_LOW_WATER = 16
TRIM_DELAY = 1.0
TRIM_INTERVAL = 10.0


@dataclass(frozen=True)
class Limits:
    per_uid: int | None  # None: no per-uid cap (the root socket has one uid)
    total: int
    exempt: frozenset[int] = frozenset({0})  # uids the per-uid cap does not apply to


USER_LIMITS = Limits(USER_CONNECTIONS_PER_UID, USER_CONNECTIONS_MAX)
ROOT_LIMITS = Limits(None, ROOT_CONNECTIONS_MAX)


@dataclass(eq=False)
class Connection:
    uid: int
    since: float  # accept, or the end of its last complete request: "oldest" is the smallest
    drop: Callable[[str], None]  # close it now, telling the peer why
    busy: bool = False  # inside a request: its line read, its answer not yet written


class ConnectionTable:
    """The open connections of one socket, oldest first; admit() enforces the caps."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self._clock = clock
        # Dicts keep insertion order; end() re-inserts, so iteration is by `since`, oldest first.
        self._all: dict[Connection, None] = {}
        self._by_uid: dict[int, dict[Connection, None]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def count(self, uid: int) -> int:
        return len(self._by_uid.get(uid, ()))

    def admit(self, uid: int, drop: Callable[[str], None]) -> Connection:
        """Register a new connection of `uid`, first dropping the oldest idle ones the caps ask
        for; LimitsExceeded (and nothing dropped) if every candidate is inside a request."""
        victims: list[tuple[Connection, str]] = []
        per_uid, total = self.limits.per_uid, self.limits.total
        if per_uid is not None and uid not in self.limits.exempt and self.count(uid) >= per_uid:
            victim = _oldest_idle(self._by_uid.get(uid, {}), ())
            if victim is None:
                raise LimitsExceeded(f"Too many connections of uid {uid} (at most {per_uid}), "
                                     "all inside a request; try again.")
            victims.append((victim, f"uid {uid} opened more than {per_uid} connections"))
        if len(self._all) - len(victims) >= total:
            victim = _oldest_idle(self._all, [v for v, _ in victims])
            if victim is None:
                raise LimitsExceeded(f"Too many connections (at most {total}), all inside a "
                                     "request; try again.")
            victims.append((victim, f"more than {total} connections are open"))
        for victim, why in victims:
            self.remove(victim)
            victim.drop(f"Connection dropped: {why}; this was the oldest idle one.")
        conn = Connection(uid, self._clock(), drop)
        self._all[conn] = None
        self._by_uid.setdefault(uid, {})[conn] = None
        return conn

    def begin(self, conn: Connection) -> None:
        """A complete request line arrived: not idle until its answer is written."""
        conn.busy = True

    def end(self, conn: Connection) -> None:
        """Its answer is written: idle again, and now the youngest."""
        conn.busy = False
        conn.since = self._clock()
        if conn in self._all:
            del self._all[conn]
            self._all[conn] = None
            mine = self._by_uid[conn.uid]
            del mine[conn]
            mine[conn] = None

    def remove(self, conn: Connection) -> None:
        """Forget it (idempotent: an evicted connection's own close comes later)."""
        if conn not in self._all:
            return
        del self._all[conn]
        mine = self._by_uid[conn.uid]
        del mine[conn]
        if not mine:
            del self._by_uid[conn.uid]

    def oldest_idle(self) -> Connection | None:
        return _oldest_idle(self._all, ())

    def connections(self) -> list[Connection]:
        return list(self._all)


def _oldest_idle(conns: dict[Connection, None], exclude: Any) -> Connection | None:
    for conn in conns:
        if not conn.busy and conn not in exclude:
            return conn
    return None


def fitting_limits(limits: Limits, fd_limit: int, share: float) -> Limits:
    """`limits`, with the total cut so this socket's connections use at most `share` of
    fd_limit / FD_HEADROOM_FACTOR (a low RLIMIT_NOFILE must not make EMFILE reachable)."""
    room = max(1, int(fd_limit / FD_HEADROOM_FACTOR * share))
    total = min(limits.total, room)
    per_uid = None if limits.per_uid is None else min(limits.per_uid, total)
    return Limits(per_uid, total, limits.exempt)


class MemoryReturn:
    """Gives a connection flood's freed memory back to the system once the flood is over."""

    def __init__(self, release: Callable[[], None],
                 call_later: Callable[[float, Callable[[], None]], object],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._release = release
        self._call_later = call_later
        self._clock = clock
        self.open = 0
        self.accepted = 0  # since the last release
        self.releases = 0
        self._last = -TRIM_INTERVAL
        self._pending = False

    def opened(self) -> None:
        self.open += 1
        self.accepted += 1

    def closed(self) -> None:
        self.open -= 1
        if self._pending or self.accepted < TRIM_AFTER_ACCEPTS or self.open > TRIM_LOW_WATER:
            return
        self._pending = True
        delay = max(TRIM_DELAY, self._last + TRIM_INTERVAL - self._clock())
        self._call_later(delay, self._run)

    def _run(self) -> None:
        self._pending = False
        if self.open > TRIM_LOW_WATER:
            return  # the flood came back: its end will ask again
        self.accepted = 0
        self._last = self._clock()
        self.releases += 1
        self._release()
