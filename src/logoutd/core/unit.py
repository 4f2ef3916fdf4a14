"""One unit under user@UID.service: a scope (existing processes moved in) or a service
(spawned), its name rules, its lifecycle and how it ended.

A unit lives until its cgroup is empty; it dies with its *user* (User.stop signals the whole
user@UID.service subtree), never with a session. A service also ends with its main process.
"""

from __future__ import annotations

import enum
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from logoutd.core.cgroupnames import unit_cgroup
from logoutd.core.checkpoint import checkpoint
from logoutd.core.context import Context, log
from logoutd.core.ports import ProcessRef
from logoutd.core.stopround import SERVICE_SIGNALS, StopRound
from logoutd.core.timers import Timers
from logoutd.core.userref import UserRef
from logoutd.crashpoints import crashpoint
from logoutd.errors import InvalidArgument, ProcessGone

NAME_MAX = 200  # bytes, suffix included
_NAME = re.compile(r"[A-Za-z0-9:_.@-]+")
UNIT_PATH = "/usr/local/bin:/usr/bin:/bin"


class UnitKind(enum.StrEnum):
    SCOPE = "scope"  # processes that asked to stay were moved in (run --scope)
    SERVICE = "service"  # a command the daemon spawned as the user (run --unit)


class UnitState(enum.StrEnum):
    STARTING = "starting"  # services: spawned; the child has not exec'd (nor failed) yet
    ACTIVE = "active"  # running
    STOPPING = "stopping"  # SIGTERM sent (stop-unit or the user's stop); removed once empty
    FAILED = "failed"  # services: the start failed, timed out or was never confirmed; the
    # child is killed and the unit removed once empty, with no result kept


def _shown(name: str) -> str:
    shown = name.replace("\0", "\\0")
    return shown if len(shown) <= 64 else shown[:63] + "…"


def unit_name(name: str, kind: UnitKind) -> str:
    """The validated full name: [A-Za-z0-9:_.@-], no '..', ≤ 200 bytes, suffix of its kind."""
    def bad(why: str) -> InvalidArgument:
        return InvalidArgument(f"Invalid unit name '{_shown(name)}': {why}.")

    if "\0" in name:
        raise bad("it contains NUL")
    if "/" in name:
        raise bad("it contains '/'")
    if ".." in name:
        raise bad("it contains '..'")
    for other in UnitKind:
        if name.endswith(f".{other}") and other is not kind:
            raise bad(f"a {kind} needs the suffix .{kind}, not .{other}")
    full = name if name.endswith(f".{kind}") else f"{name}.{kind}"
    if full == f".{kind}":
        raise bad("it is empty")
    if len(full.encode()) > NAME_MAX:
        raise bad(f"it is longer than {NAME_MAX} bytes")
    if not _NAME.fullmatch(full) or full.startswith("."):
        raise bad("only letters, digits and ':_.@-' are allowed, not a leading '.'")
    return full


class Owner(UserRef, Protocol):
    """The user as its units see it."""

    @property
    def service(self) -> str: ...
    @property
    def units(self) -> dict[str, Unit]: ...
    @property
    def lingering(self) -> bool: ...  # units outlive the last session only with linger
    def gc(self) -> None: ...


@dataclass(eq=False)
class Unit:
    ctx: Context
    user: Owner
    kind: UnitKind
    name: str
    created: float = 0.0
    state: UnitState = UnitState.ACTIVE
    main: ProcessRef | None = None  # services: the spawned process, while it runs
    log_path: str = ""  # services: stdout and stderr, appended
    exit_status: int | None = None  # services: the main process's exit code (< 0: its signal)
    main_lost: bool = False  # restored: the main process exited while logoutd was down
    spawning: bool = False  # the spawner has not said yet whether the child exec'd
    finalized: bool = False
    on_finished: Callable[[Unit], None] | None = field(default=None, repr=False)
    timers: Timers = field(init=False, repr=False)
    round: StopRound = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.timers = Timers(self.ctx.ports.clock)
        self.round = StopRound("unit", f"Unit {self.name} of user {self.user.name}", self.cgroup,
                               SERVICE_SIGNALS, {"user": self.user.name, "unit": self.name},
                               self.ctx.ports, self.timers, self._checkpoint, self.gc)

    @property
    def cgroup(self) -> str:
        return unit_cgroup(self.user.uid, self.name)

    @property
    def key(self) -> str:
        return f"{self.user.uid}-{self.name}"

    # -- lifecycle -------------------------------------------------------------------------

    def watch(self) -> None:
        ports = self.ctx.ports
        ports.cgroups.watch_empty(self.cgroup, self._on_cgroup_event)
        if self.main is not None:
            ports.processes.watch_exit(self.main, self._on_main_exit)

    def resume(self) -> None:
        """After a daemon restart: re-watch, re-arm a pending SIGKILL, collect if empty."""
        if self.state in (UnitState.STARTING, UnitState.FAILED):
            # Its caller got no answer (or an error): whether or not the child got to exec,
            # the start never succeeded, so what it left is killed.
            log.info("Unit %s of user %s: its start was never confirmed (logoutd restarted "
                     "meanwhile), killing it.", self.name, self.user.name)
            self.start_failed()
            return
        self.watch()
        self.round.resume()
        if self.main_lost and self.state is UnitState.ACTIVE and not self.may_gc():
            log.info("Unit %s: main process exited while logoutd was down, stopping the rest.",
                     self.name)
            self.stop()
            return
        self.gc()

    def start_confirmed(self) -> None:
        """The spawned child exec'd: the service runs (unless a stop came meanwhile)."""
        self.spawning = False
        if self.finalized:
            return
        if self.state is UnitState.STARTING:
            self.state = UnitState.ACTIVE
            self.save()
        self.watch()
        self.gc()

    def start_failed(self) -> None:
        """The child failed or was killed before exec (the spawner reaps it): kill whatever is
        in the cgroup, remove the unit once empty. No result is kept: the caller got the error."""
        self.spawning = False
        if self.finalized:
            return
        ports = self.ctx.ports
        self.state = UnitState.FAILED
        self.on_finished = None
        if self.main is not None:
            ports.processes.release(self.main)
            self.main = None
        if ports.cgroups.remove(self.cgroup):
            self.forget()
            self.user.gc()
            return
        # Not empty yet: the child is still exiting, or (after a restart) it had exec'd.
        self.save()
        ports.cgroups.watch_empty(self.cgroup, self._on_cgroup_event)
        ports.cgroups.kill(self.cgroup)
        self.gc()

    def stop(self) -> int:
        """stop-unit: SIGTERM and SIGCONT to every process, SIGKILL after UserStopTimeoutSec=."""
        count = 0
        if self.state is not UnitState.STOPPING:
            self.state = UnitState.STOPPING
            log.info("Unit %s of user %s stopping.", self.name, self.user.name)
            count = self.round.start(self.ctx.config.user_stop_timeout_sec)  # saves the state
        self.gc()
        return count

    def kill(self, who: str, signo: int) -> int:
        """Signal the main process or every process; the unit goes on (systemd's KillUnit)."""
        if who == "main":
            if self.main is None:
                raise ProcessGone(f"Unit {self.name} has no main process running.")
            self.ctx.ports.processes.signal(self.main, signo)
            return 1
        if who != "all":
            raise InvalidArgument(f"Invalid kill parameter '{who}'")
        return self.ctx.ports.cgroups.signal_all(self.cgroup, (signo,))

    def user_stopping(self) -> None:
        """The user stops: it signals (and later kills) the whole subtree, this unit included."""
        if self.state is not UnitState.STOPPING:
            self.state = UnitState.STOPPING
            self._checkpoint()

    def _on_main_exit(self) -> None:
        """A service ends with its main process, as systemd's Type=simple: what it left
        behind is stopped (SIGTERM, then SIGKILL after UserStopTimeoutSec=)."""
        self._reap_main()
        if (self.kind is UnitKind.SERVICE and self.main is None
                and self.state is UnitState.ACTIVE and not self.may_gc()):
            log.info("Unit %s: main process gone, stopping the processes it left.", self.name)
            self.stop()
            return
        self.gc()

    def _reap_main(self) -> None:
        ports = self.ctx.ports
        if self.main is None or ports.processes.is_alive(self.main):
            return
        self.exit_status = ports.spawner.reap(self.main.pid)
        ports.processes.release(self.main)
        log.info("Unit %s: main process %d exited (%s).", self.name, self.main.pid,
                 describe_exit(self.exit_status))
        self.main = None
        self._checkpoint()

    def _on_cgroup_event(self) -> None:
        self.gc()

    def may_gc(self) -> bool:
        # While spawning, the cgroup is empty until the child has moved itself in.
        return not self.spawning and not self.ctx.ports.cgroups.is_populated(self.cgroup)

    def gc(self) -> None:
        if self.finalized or not self.may_gc():
            return
        self._reap_main()
        self.finalize()

    def finalize(self) -> None:
        """Remove the cgroup and the state; the user may then be collected."""
        if self.finalized:
            return
        crashpoint("unit.finalize.before-remove")
        if not self.ctx.ports.cgroups.remove(self.cgroup):
            return  # a process slipped in; the next empty event brings us back
        crashpoint("unit.finalize.cgroup-removed")
        self.forget()
        log.info("Unit %s of user %s finished.", self.name, self.user.name)
        if self.on_finished is not None:
            self.on_finished(self)
        self.user.gc()

    def forget(self) -> None:
        """Drop watches, pidfd, state and the user's reference (the cgroup is gone already)."""
        if self.finalized:
            return
        ports = self.ctx.ports
        self.finalized = True
        self.timers.cancel_all()
        ports.cgroups.unwatch(self.cgroup)
        if self.main is not None:
            ports.processes.release(self.main)
            self.main = None
        ports.store.remove("units", self.key)
        crashpoint("unit.finalize.state-removed")
        if self.user.units.get(self.name) is self:
            del self.user.units[self.name]

    # -- persistence -----------------------------------------------------------------------

    @classmethod
    def from_record(cls, ctx: Context, user: Owner, record: dict[str, Any]) -> Unit:
        """The unit `to_record` saved, its main process re-pinned if it still runs; KeyError,
        TypeError, ValueError or InvalidArgument (a bad name) for a record it cannot read."""
        kind = UnitKind(record["kind"])
        name = unit_name(str(record["name"]), kind)
        main_pid, start = record.get("main_pid"), record.get("main_start")
        status = record.get("exit_status")
        unit = cls(ctx, user, kind, name, created=float(record.get("created") or 0.0),
                   state=UnitState(record.get("state", "active")),
                   log_path=str(record.get("log_path") or ""),
                   exit_status=int(status) if status is not None else None)
        unit.round.from_record(record)
        # Last: nothing after it can fail and leave the process pinned.
        if main_pid is not None and start is not None:
            unit.main = ctx.ports.processes.repin(int(main_pid), int(start))
        unit.main_lost = kind is UnitKind.SERVICE and main_pid is not None and unit.main is None
        return unit

    def to_record(self) -> dict[str, Any]:
        return {
            "uid": self.user.uid,
            "kind": str(self.kind),
            "name": self.name,
            "created": self.created,
            "state": str(self.state),
            "main_pid": self.main.pid if self.main is not None else None,
            "main_start": self.main.start_time if self.main is not None else None,
            "log_path": self.log_path,
            **self.round.to_record(),
            "exit_status": self.exit_status,
        }

    def save(self) -> None:
        if not self.finalized:
            self.ctx.ports.store.save("units", self.key, self.to_record())

    def _checkpoint(self) -> None:
        """Save on the stop path: a failure is logged and retried, and the stop goes on."""
        checkpoint(f"Unit {self.name} of user {self.user.name}", self.save, self.timers)


def describe_exit(status: int | None) -> str:
    if status is None:
        return "exit status unknown: not logoutd's child any more (a daemon restart)"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def unit_result(status: int | None) -> str:
    """systemd's words: success, exit-code, signal; unknown where logoutd could not see it."""
    if status is None:
        return "unknown"
    return "success" if status == 0 else "exit-code" if status > 0 else "signal"


