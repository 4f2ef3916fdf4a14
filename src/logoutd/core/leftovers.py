"""Leftovers: the processes still in a scope when its session ended, and how each would have
outlived a classic logout (the tty's SIGHUP). Permissive mode's main output."""

from __future__ import annotations

import signal
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from logoutd.core.ports import ProcessInfo, StateStore

SIGHUP_BIT = 1 << (signal.SIGHUP - 1)
KEEP_RECORDS = 10_000  # newest records kept for `logoutctl leftovers`
# Processes described per ended session: each costs a few /proc reads on the daemon's loop, and
# a user decides how many processes a scope holds (up to pid_max).
RECORD_MAX_PER_SESSION = 1000


@dataclass(frozen=True)
class Leftover:
    session: str
    user: str
    uid: int
    action: str  # "killed" (KillUserProcesses=yes), "kept" (permissive or not killed)
    recorded_at: float
    pid: int
    ppid: int
    proc_uid: int
    comm: str
    exe: str
    cmdline: str
    start_time: float  # epoch seconds
    tty: str  # "" without a controlling tty
    why: tuple[str, ...]  # how it escapes a classic logout; empty: it would have died anyway


def tty_name(tty_nr: int) -> str:
    """Field 7 of /proc/PID/stat as a device name: pts/N, ttyN, ttySN, or "" for none."""
    if tty_nr == 0:
        return ""
    major, minor = (tty_nr >> 8) & 0xFFF, (tty_nr & 0xFF) | ((tty_nr >> 12) & 0xFFF00)
    if 136 <= major <= 143:
        return f"pts/{(major - 136) * 256 + minor}"
    if major == 4:
        return f"tty{minor}" if minor < 64 else f"ttyS{minor - 64}"
    return f"{major}:{minor}"


def escape_reasons(info: ProcessInfo) -> tuple[str, ...]:
    """Why a classic logout (SIGHUP from the tty and the shell) would not have ended it."""
    reasons = []
    if info.sig_ignored & SIGHUP_BIT:
        reasons.append("ignores SIGHUP")
    if info.sid == info.pid:
        reasons.append("daemonized: leads its own session (setsid)")
    elif info.ppid == 1:
        reasons.append("daemonized: its parent exited (reparented)")
    if info.tty_nr == 0:
        reasons.append("no controlling tty")
    return tuple(reasons)


class LeftoverLog:
    """The newest records, in memory and appended to a private file that survives restarts."""

    def __init__(self, store: StateStore) -> None:
        self._store = store
        self._records: deque[Leftover] = deque(maxlen=KEEP_RECORDS)

    def restore(self) -> None:
        for raw in self._store.load_lines("leftovers", KEEP_RECORDS):
            try:
                raw["why"] = tuple(raw.get("why", ()))
                self._records.append(Leftover(**raw))
            except TypeError:
                continue  # written by another version: skip, never fail a start

    def add(self, records: Iterable[Leftover]) -> None:
        batch = list(records)
        self._records.extend(batch)
        self._store.append_lines("leftovers", [asdict(r) for r in batch], keep=KEEP_RECORDS)

    def query(self, session: str | None = None, uid: int | None = None) -> list[Leftover]:
        return [r for r in self._records
                if (session is None or r.session == session) and (uid is None or r.uid == uid)]


def as_dict(record: Leftover) -> dict[str, Any]:
    data = asdict(record)
    data["why"] = list(record.why)
    return data
