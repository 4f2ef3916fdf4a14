"""Kill records: which processes a stop round ended (or, permissive, would have), for the info
log line, `logoutctl kill-history` and the notice at the user's next login.

Bounded everywhere a user decides the size: a round describes at most `PROCESSES_KEPT`
processes (the count comes from the signalling itself), a user keeps the newest
`ENTRIES_KEPT` entries, and the strings in them are cut. One file per user in the state
store, rewritten atomically, so the history survives a daemon restart.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from logoutd.core.ports import Ports, StateStore
from logoutd.errors import LogoutdError

log = logging.getLogger("logoutd")

PROCESSES_KEPT = 20  # described per round: each costs a few /proc reads on the daemon's loop
ENTRIES_KEPT = 10  # per user
CMDLINE_KEPT = 256
COMM_KEPT = 16  # the kernel's TASK_COMM_LEN
LOGGED = 20  # processes named in the info line
DESCRIBED = PROCESSES_KEPT * 2  # pids read for them (some may have exited)
KIND = "kills"  # the state store's kind: one record per uid
NOTICE_KIND = "notice"  # a flag per user with an entry the login notice has not shown


@dataclass(frozen=True)
class EndedProcess:
    pid: int
    comm: str
    cmdline: str  # shell-quoted where /proc gave the words (to paste after `logoutctl run --`)
    start_time: float  # epoch seconds; 0: unknown


@dataclass(frozen=True)
class KillEntry:
    """One logout (or stop) that ended processes, or in permissive mode would have."""

    ended_at: float  # epoch seconds
    session: str  # "" for a user's or unit's stop round
    service: str  # the PAM service, or what stopped (e.g. "user@1000.service")
    tty: str
    mode: str  # "killed", or "permissive": left running, would have been ended
    count: int  # every process signalled (or left); `processes` holds the first few
    processes: tuple[EndedProcess, ...]
    shown: bool = False  # the login notice has shown it


class Described(Protocol):
    """A ProcessInfo, or a leftovers record."""

    @property
    def pid(self) -> int: ...
    @property
    def comm(self) -> str: ...
    @property
    def cmdline(self) -> str: ...
    @property
    def start_time(self) -> float: ...


def ended(infos: Iterable[Described]) -> tuple[EndedProcess, ...]:
    """The first PROCESSES_KEPT processes, their strings cut to a bounded size."""
    out: list[EndedProcess] = []
    for info in infos:
        if len(out) == PROCESSES_KEPT:
            break
        argv = getattr(info, "argv", ())  # a ProcessInfo's; a leftovers record has none
        cmdline = shlex.join(argv) if argv else info.cmdline
        if len(cmdline) > CMDLINE_KEPT:
            cmdline = cmdline[:CMDLINE_KEPT] + "…"
        out.append(EndedProcess(info.pid, info.comm[:COMM_KEPT], cmdline, info.start_time))
    return tuple(out)


def describe_first(ports: Ports, pids: Sequence[int]) -> tuple[EndedProcess, ...]:
    """Read /proc for the first PROCESSES_KEPT pids only (the rest are counted, not read)."""
    infos = (ports.processes.brief(pid) for pid in pids[:DESCRIBED])
    return ended(info for info in infos if info is not None)


def format_duration(seconds: float) -> str:
    """A short human span: 42s, 5m03s, 2h05m, 3d04h."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def summary(processes: Sequence[EndedProcess], count: int, now: float) -> str:
    """'sleep[4242] 5m03s, python3[4250] 2h05m and 980 more' for one log line."""
    shown = processes[:LOGGED]
    parts = [f"{p.comm}[{p.pid}] " + (format_duration(now - p.start_time) if p.start_time else "?")
             for p in shown]
    text = ", ".join(parts) or "-"
    more = count - len(shown)
    return f"{text} and {more} more" if more > 0 else text


def entry_view(entry: KillEntry) -> dict[str, Any]:
    """As JSON; by hand, as dataclasses.asdict costs ~20 µs a process on the stop round's path."""
    return {"ended_at": entry.ended_at, "session": entry.session, "service": entry.service,
            "tty": entry.tty, "mode": entry.mode, "count": entry.count, "shown": entry.shown,
            "processes": [{"pid": p.pid, "comm": p.comm, "cmdline": p.cmdline,
                           "start_time": p.start_time} for p in entry.processes]}


def _entry_from(raw: Any) -> KillEntry:
    if not isinstance(raw, dict):
        raise TypeError("not an object")
    procs = tuple(EndedProcess(int(p["pid"]), str(p["comm"])[:COMM_KEPT],
                               str(p["cmdline"])[:CMDLINE_KEPT + 1], float(p["start_time"]))
                  for p in raw["processes"][:PROCESSES_KEPT])
    return KillEntry(float(raw["ended_at"]), str(raw["session"]), str(raw["service"]),
                     str(raw["tty"]), str(raw["mode"]), int(raw["count"]), procs,
                     bool(raw.get("shown", False)))


class KillHistory:
    """The newest ENTRIES_KEPT entries per user, in memory and in one state file per user."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._by_uid: dict[int, list[KillEntry]] = {}
        self._views: dict[int, list[dict[str, Any]]] = {}  # entry_view of each, for the file
        self._names: dict[int, str] = {}

    def restore(self) -> None:
        for record in self._store.load_all(KIND):
            try:
                uid = int(record["uid"])
                entries = [_entry_from(e) for e in record["entries"]][-ENTRIES_KEPT:]
            except (KeyError, TypeError, ValueError):
                log.warning("Ignoring a kill history file written by another version.")
                continue
            self._by_uid[uid] = entries
            self._views[uid] = [entry_view(e) for e in entries]
            self._names[uid] = str(record.get("user", ""))
            self._flag(uid, any(not e.shown for e in entries))

    def add(self, uid: int, user: str, entry: KillEntry) -> None:
        if all(e.shown for e in self._by_uid.get(uid, [])):
            self._flag(uid, True)
        self._by_uid[uid] = [*self._by_uid.get(uid, []), entry][-ENTRIES_KEPT:]
        self._views[uid] = [*self._views.get(uid, []), entry_view(entry)][-ENTRIES_KEPT:]
        self._names[uid] = user
        self._save(uid)

    def entries(self, uid: int) -> list[KillEntry]:
        return list(self._by_uid.get(uid, []))

    def take_unshown(self, uid: int) -> list[KillEntry]:
        """The entries the login notice has not shown yet, now marked shown."""
        entries = self._by_uid.get(uid, [])
        fresh = [e for e in entries if not e.shown]
        if fresh:
            self._by_uid[uid] = [replace(e, shown=True) for e in entries]
            for view in self._views[uid]:
                view["shown"] = True
            self._save(uid)
            self._flag(uid, False)
        return fresh

    def _flag(self, uid: int, unshown: bool) -> None:
        """RUNTIME_DIR/notice/UID.json exists while the user has an entry not shown yet: the
        profile script tests for it before it starts logoutctl (a Python start per login)."""
        try:
            if unshown:
                self._store.save(NOTICE_KIND, str(uid), {"uid": uid})
            else:
                self._store.remove(NOTICE_KIND, str(uid))
        except LogoutdError as e:
            log.error("Cannot flag the login notice of uid %d (%s).", uid, e.message)

    def _save(self, uid: int) -> None:
        record = {"uid": uid, "user": self._names.get(uid, ""),
                  "entries": self._views[uid]}
        try:
            self._store.save(KIND, str(uid), record)
        except LogoutdError as e:  # kept in memory; only the file missed it
            log.error("Cannot save the kill history of uid %d (%s).", uid, e.message)
