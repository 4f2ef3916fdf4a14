"""The stop round of a session, user or unit: signal all, SIGKILL by `cgroup.kill` at a deadline.

One implementation for the three owners. What differs is chosen by the owner, in one place
(`SESSION_SIGNALS`, `SERVICE_SIGNALS` and the timeout it passes to `start`): a session's
scope also gets SIGHUP (its processes had a terminal, as logind's KillSignal= plus
SendSIGHUP=yes), and a session waits SessionStopTimeoutSec= where users and units wait
UserStopTimeoutSec=. Everything else is the same for all three: the deadline counts from
the start of the round and is saved with the round before any signal is sent (a crash
during or after the round never sends it twice; after a restart the deadline still kills
what is left, once), the round and the kill are audited, and `term_sent`, `sigkill_at` and
`sigkill_sent` are persisted by the owner's record.
"""

from __future__ import annotations

import logging
import math
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from logoutd.core.killrecords import DESCRIBED, EndedProcess, describe_first, summary
from logoutd.core.ports import Ports
from logoutd.core.timers import Timers
from logoutd.crashpoints import crashpoint
from logoutd.logfields import fields

log = logging.getLogger("logoutd")

SESSION_SIGNALS = (signal.SIGTERM, signal.SIGCONT, signal.SIGHUP)
# Sent in a second pass, as PID 1 stops a scope (reference/logind.md §1.6): SIGTERM and SIGCONT
# to every process, then SIGHUP to every process still there, read afresh (most are gone).
SECOND_PASS = (signal.SIGHUP,)
SERVICE_SIGNALS = (signal.SIGTERM, signal.SIGCONT)  # user@UID.service and units: no tty
KINDS = ("session", "user", "unit")  # the owners; each has the crash points {kind}.stop.*
_TIMER = "sigkill"


class Sent(NamedTuple):
    """What `StopRound.send` signalled: the first processes, named, and how many in all."""

    first: tuple[EndedProcess, ...]
    signalled: int


@dataclass(eq=False)
class StopRound:
    """The round's state; the owner saves it (`to_record`) and restores it (`from_record`)."""

    kind: str  # one of KINDS
    label: str  # the owner in log lines, e.g. "Session c1"
    cgroup: str
    signals: tuple[signal.Signals, ...]
    audit_fields: Mapping[str, Any]  # who the audit records name, e.g. session=, user=
    ports: Ports
    timers: Timers  # the owner's: its finalize cancels the deadline with the rest
    save: Callable[[], object]  # the owner's checkpoint: a failed save never skips the kill
    on_killed: Callable[[], None]  # the deadline passed (and what was left is killed)
    term_sent: bool = False
    sigkill_at: float | None = None
    sigkill_sent: bool = False
    # Told which processes the round signalled (the first few) and how many; sessions keep it.
    on_signalled: Callable[[tuple[EndedProcess, ...], int], None] | None = None

    def start(self, timeout: float) -> int:
        """Save the deadline, signal every process, then log, audit and arm SIGKILL; once."""
        sent = self.send(timeout)
        return 0 if sent is None else self.report(sent)

    def send(self, timeout: float) -> Sent | None:
        """Save the deadline and signal every process, once (None if the round was sent). Only
        what must precede the signals is done here; `report` logs, audits and arms after them,
        so that an owner's own log line (a session's "stopping") can come first."""
        if self.term_sent:
            return None
        # The stop timeout counts from the start of the round, not its end.
        deadline = self.ports.clock.now() + timeout
        self.term_sent = True
        if deadline != math.inf:
            self.sigkill_at = deadline
        self.save()
        cgroups = self.ports.cgroups
        pids = cgroups.pids(self.cgroup)
        # The head is named before its signal: once signalled, a process exits and /proc
        # forgets it. The bulk is signalled first, and starts exiting while the head is read.
        head, bulk = pids[:DESCRIBED], pids[DESCRIBED:]
        now = tuple(s for s in self.signals if s not in SECOND_PASS)
        later = tuple(s for s in self.signals if s in SECOND_PASS)
        cgroups.signal(bulk, now)
        first = describe_first(self.ports, head)
        count = cgroups.signal_all(self.cgroup, now, first=head, seen=bulk)
        if later:
            cgroups.signal(cgroups.pids(self.cgroup), later)
        crashpoint(f"{self.kind}.stop.term-sent")
        return Sent(first, count)

    def report(self, sent: Sent) -> int:
        """After `send`: name what was signalled, audit and count it, and arm the SIGKILL."""
        first, count = sent
        if count:
            names = [s.name for s in self.signals]
            log.info("%s: sent %s to %d processes: %s.", self.label, ", ".join(names), count,
                     summary(first, count, self.ports.clock.now()),
                     extra=fields(**self.audit_fields, signals=names, count=count))
            self.ports.audit.record("signalled", **self.audit_fields, signals=names, count=count)
            self.ports.metrics.processes_signalled(self.kind, count)
            if self.on_signalled is not None:
                self.on_signalled(first, count)
        if self.ports.cgroups.is_populated(self.cgroup):
            self._arm()
        return count

    def resume(self) -> None:
        """After a restart: never signal again; re-arm a SIGKILL that was not sent yet."""
        if self.term_sent and not self.sigkill_sent:
            self._arm()

    def cancel(self) -> None:
        """The owner revived (a user logging in again while stopping): no round under way."""
        self.timers.cancel(_TIMER)
        self.term_sent = False
        self.sigkill_at = None
        self.sigkill_sent = False

    def _arm(self) -> None:
        if self.sigkill_at is not None:
            self.timers.arm_at(_TIMER, self.sigkill_at, self._on_deadline)

    def _on_deadline(self) -> None:
        crashpoint(f"{self.kind}.stop.sigkill-timeout")
        cgroups, audit = self.ports.cgroups, self.ports.audit
        if cgroups.is_populated(self.cgroup):
            pids = cgroups.pids(self.cgroup)  # before the kill: what it ends, for the log
            first = describe_first(self.ports, pids)
            cgroups.kill(self.cgroup)
            log.info("%s: stop timed out, killed what was left (cgroup.kill): %d processes: %s.",
                     self.label, len(pids), summary(first, len(pids), self.ports.clock.now()),
                     extra=fields(**self.audit_fields, signals=["SIGKILL"], count=len(pids)))
            audit.record("signalled", **self.audit_fields, signals=["SIGKILL"], count=len(pids))
            self.ports.metrics.stop_timed_out(self.kind, len(pids))
        self.sigkill_sent = True
        self.save()
        self.on_killed()

    def to_record(self) -> dict[str, Any]:
        return {"term_sent": self.term_sent, "sigkill_at": self.sigkill_at,
                "sigkill_sent": self.sigkill_sent}

    def from_record(self, record: Mapping[str, Any]) -> None:
        """Load what `to_record` saved. Users and units saved by an older logoutd kept only
        sigkill_at, which they wrote with the round: its presence means the round was sent."""
        sigkill_at = record.get("sigkill_at")
        self.sigkill_at = float(sigkill_at) if sigkill_at is not None else None
        self.term_sent = bool(record.get("term_sent", self.sigkill_at is not None))
        self.sigkill_sent = bool(record.get("sigkill_sent"))
