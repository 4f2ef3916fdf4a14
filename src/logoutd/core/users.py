"""A user with sessions or linger: slice, runtime dir, the delayed stop after the last session."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from logoutd.config.values import format_timespan
from logoutd.core.cgroupnames import user_service, user_slice
from logoutd.core.checkpoint import checkpoint
from logoutd.core.context import Context, log
from logoutd.core.killrecords import EndedProcess, KillEntry
from logoutd.core.ports import Account
from logoutd.core.sessions import Session, SessionState, StopCause
from logoutd.core.stopround import SERVICE_SIGNALS, StopRound
from logoutd.core.timers import Timers
from logoutd.core.unit import Unit
from logoutd.crashpoints import crashpoint
from logoutd.logfields import fields

SYSTEM_UID_MAX = 999  # Debian's; RemoveIPC= spares system users


class UserState(enum.StrEnum):
    OPENING = "opening"  # slice and runtime dir being created
    ONLINE = "online"  # has sessions, none of them active
    ACTIVE = "active"  # has an active session
    LINGERING = "lingering"  # no sessions, kept by linger (or by its units: KeepUserWhileUnits=)
    CLOSING = "closing"  # stopping, or every session is closing, or waiting out UserStopDelaySec=


@dataclass(eq=False)
class User:
    ctx: Context
    account: Account
    sessions: dict[str, Session] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)  # by name; they die with the user
    runtime_path: str = ""
    timestamp: float = 0.0
    started: bool = False
    stopping: bool = False
    finalized: bool = False
    # KeepUserWhileUnits=: when the units began to hold the sessionless user (KeepUserMaxSec=
    # counts from here); None while not held. Saved, so a restart keeps the deadline.
    kept_since: float | None = None
    # Set by the manager: told once the user is finalized.
    on_removed: Callable[[User], None] | None = field(default=None, repr=False)
    timers: Timers = field(init=False, repr=False)
    round: StopRound = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.timers = Timers(self.ctx.ports.clock)
        # The whole user@UID.service subtree: every unit of the user, whatever its own state.
        self.round = StopRound("user", f"User {self.name}", self.service, SERVICE_SIGNALS,
                               {"user": self.name}, self.ctx.ports, self.timers,
                               self._checkpoint, self._try_finalize,
                               on_signalled=self._signalled)

    def _signalled(self, processes: tuple[EndedProcess, ...], count: int) -> None:
        """The user's units (kept programs) ended with the user: the next login's notice."""
        self.ctx.remember_kill(self.uid, self.name, KillEntry(
            self.ctx.ports.clock.now(), "", self.service.rsplit("/", 1)[-1], "", "killed", count,
            processes))

    @property
    def uid(self) -> int:
        return self.account.uid

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def slice(self) -> str:
        return user_slice(self.uid)

    @property
    def service(self) -> str:
        return user_service(self.uid)

    @property
    def lingering(self) -> bool:
        return self.ctx.ports.userfiles.is_lingering(self.name)

    @property
    def state(self) -> UserState:
        if self.stopping:
            return UserState.CLOSING
        if not self.started:
            return UserState.OPENING
        if self.sessions:
            states = {s.state for s in self.sessions.values()}
            if SessionState.ACTIVE in states:
                return UserState.ACTIVE
            if states == {SessionState.CLOSING}:
                return UserState.CLOSING
            return UserState.ONLINE
        return UserState.LINGERING if self.lingering or self.held else UserState.CLOSING

    @property
    def held(self) -> bool:
        """KeepUserWhileUnits=: no session, but units that keep the user from stopping."""
        return (self.ctx.config.keep_user_while_units and bool(self.units) and not self.sessions
                and not self.stopping and not self.finalized and not self.lingering)

    def start(self) -> None:
        """Slice and runtime dir; idempotent. A new session or linger cancels a pending stop."""
        self.timers.cancel("stop-delay")
        if self.started and not self.stopping:
            return
        if self.stopping:
            # A login while the user was stopping revives it, as logind's user_start() does.
            self.stopping = False
            self.round.cancel()
        ports = self.ctx.ports
        ports.cgroups.create(self.slice)
        self.runtime_path = ports.userfiles.create_runtime_dir(self.account)
        crashpoint("user.start.runtime-dir")
        self.timestamp = ports.clock.now()
        self.started = True
        ports.cgroups.watch_empty(self.slice, self._on_slice_event)
        self.save()

    def resume(self) -> None:
        self.ctx.ports.cgroups.watch_empty(self.slice, self._on_slice_event)
        if self.stopping:
            self.round.resume()

    def add_session(self, session: Session) -> None:
        self.sessions[session.id] = session
        self.timers.cancel("stop-delay")
        self._release()

    def remove_session(self, session: Session) -> None:
        """The session was finalized; with none left, count down UserStopDelaySec=."""
        self.sessions.pop(session.id, None)
        self.gc()

    def gc(self) -> None:
        if self.finalized or self.sessions:
            return
        if self.stopping:
            self._try_finalize()
            return
        if self.lingering:
            return
        if self.held:
            self._hold()
            return
        self._release()
        if "stop-delay" not in self.timers:
            self.timers.arm("stop-delay", self.ctx.config.user_stop_delay_sec, self._on_stop_delay)

    def _on_stop_delay(self) -> None:
        if self.sessions or self.lingering:
            return
        if self.held:  # a unit appeared meanwhile (root's run --scope, or a unit's own)
            self._hold()
            return
        self.stop(force=False)

    def _hold(self) -> None:
        """Units keep the user: no stop delay; the stop at KeepUserMaxSec= after the last
        session (re-armed at each call, so a reload's new limit applies)."""
        self.timers.cancel("stop-delay")
        if self.kept_since is None:
            self.kept_since = self.ctx.ports.clock.now()
            log.info("User %s: no session left; kept while %d unit(s) run "
                     "(KeepUserWhileUnits=yes).", self.name, len(self.units))
            self.ctx.ports.audit.record("user-kept", user=self.name, uid=self.uid,
                                        units=sorted(self.units))
            self._checkpoint()
        limit = self.ctx.config.keep_user_max_sec
        self.timers.arm_at("keep-max", self.kept_since + limit, self._on_keep_max)

    def _release(self) -> None:
        """Not held any more (a session came, the units ended, the option went off)."""
        self.timers.cancel("keep-max")
        if self.kept_since is not None:
            self.kept_since = None
            self._checkpoint()

    def _on_keep_max(self) -> None:
        if not self.held:
            return
        limit = format_timespan(self.ctx.config.keep_user_max_sec)
        log.info("User %s: kept by its units for KeepUserMaxSec=%s since the last session, "
                 "stopping.", self.name, limit)
        self.ctx.ports.audit.record("user-keep-expired", user=self.name, uid=self.uid,
                                    limit_sec=self.ctx.config.keep_user_max_sec)
        self.stop(force=False)

    def stop(self, force: bool) -> None:
        """Stop every session (forced for terminate-user), then the user's own units."""
        self.timers.cancel("stop-delay")
        self.timers.cancel("keep-max")
        for session in list(self.sessions.values()):
            if force:
                session.stop(StopCause.TERMINATE, force=True)
        if self.stopping:
            return
        self.stopping = True
        for unit in list(self.units.values()):
            unit.user_stopping()
        self.round.start(self.ctx.config.user_stop_timeout_sec)  # saves `stopping` with it
        self._try_finalize()

    def _on_slice_event(self) -> None:
        if not self.finalized:
            if self.stopping:
                self._try_finalize()
            for session in list(self.sessions.values()):
                session.gc()

    def _try_finalize(self) -> None:
        cgroups = self.ctx.ports.cgroups
        if self.finalized or self.sessions or cgroups.is_populated(self.slice):
            return
        self.finalize()

    def finalize(self) -> None:
        """Remove runtime dir, IPC objects (non-system users), slice and state."""
        ports = self.ctx.ports
        crashpoint("user.finalize.before-remove")
        if not ports.cgroups.remove(self.slice):
            return
        crashpoint("user.finalize.slice-removed")
        self.finalized = True
        self.timers.cancel_all()
        for unit in list(self.units.values()):
            unit.forget()  # empty: its cgroup went with the slice
        ports.cgroups.unwatch(self.slice)
        ports.userfiles.remove_runtime_dir(self.uid)
        crashpoint("user.finalize.runtime-dir-removed")
        if self.ctx.config.remove_ipc and self.uid > SYSTEM_UID_MAX:
            removed = ports.userfiles.remove_ipc(self.uid)
            if removed:
                log.info("User %s: removed %d SysV IPC objects.", self.name, removed)
        ports.store.remove("users", str(self.uid))
        crashpoint("user.finalize.state-removed")
        log.info("User %s logged out.", self.name, extra=fields(user=self.name, uid=self.uid))
        ports.audit.record("user-removed", user=self.name, uid=self.uid)
        if self.on_removed is not None:
            self.on_removed(self)

    def load_record(self, record: dict[str, Any]) -> None:
        """Take back what `to_record` saved (after a restart: the user had started)."""
        self.runtime_path = str(record.get("runtime_path") or "")
        self.timestamp = float(record.get("timestamp") or 0.0)
        self.started = True
        self.stopping = bool(record.get("stopping"))
        kept_since = record.get("kept_since")
        self.kept_since = float(kept_since) if kept_since is not None else None
        self.round.from_record(record)

    def to_record(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "gid": self.account.gid,
            "name": self.name,
            "home": self.account.home,
            "runtime_path": self.runtime_path,
            "timestamp": self.timestamp,
            "stopping": self.stopping,
            "kept_since": self.kept_since,
            **self.round.to_record(),
        }

    def save(self) -> None:
        if not self.finalized:
            self.ctx.ports.store.save("users", str(self.uid), self.to_record())

    def _checkpoint(self) -> None:
        """Save on the stop path: a failure is logged and retried, and the stop goes on."""
        checkpoint(f"User {self.name}", self.save, self.timers)
