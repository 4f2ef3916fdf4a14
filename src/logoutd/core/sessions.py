"""A login session: its scope, its leader, its lifecycle from start to finalize."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from logoutd.core.autokeep import keep_trees
from logoutd.core.cgroupnames import session_scope
from logoutd.core.checkpoint import checkpoint
from logoutd.core.context import Context, log
from logoutd.core.decision import KillDecision, StopAction, shall_kill
from logoutd.core.killrecords import EndedProcess, KillEntry, ended, summary
from logoutd.core.leftovers import (
    RECORD_MAX_PER_SESSION,
    Leftover,
    as_dict,
    escape_reasons,
    tty_name,
)
from logoutd.core.policy import may_keep
from logoutd.core.ports import ProcessRef
from logoutd.core.stopround import SESSION_SIGNALS, StopRound
from logoutd.core.timers import Timers
from logoutd.core.userref import UserRef
from logoutd.crashpoints import crashpoint
from logoutd.errors import InvalidArgument, LogoutdError, ProcessGone
from logoutd.logfields import fields


class SessionState(enum.StrEnum):
    OPENING = "opening"  # scope created, leader not yet moved in
    ONLINE = "online"  # on a seat but not in the foreground (logoutd has no seats: unused)
    ACTIVE = "active"  # running; seat-less sessions are active, as in logind
    CLOSING = "closing"  # released or stopping; removed once the scope is empty


class StopCause(enum.StrEnum):
    LEADER_EXIT = "leader-exit"  # 1. the leader exited (its pidfd became readable)
    RELEASE_TIMEOUT = "release-timeout"  # 2. released, and the leader outlived ReleaseTimeoutSec=
    TERMINATE = "terminate"  # 3. terminate-session/terminate-user (forced)
    IDLE = "idle"  # 4. StopIdleSessionSec= expired on an idle tty (forced)
    SCOPE_EMPTY = "scope-empty"  # 5. the scope emptied on its own
    REFERENCE_CLOSED = "reference-closed"  # D-Bus: the PAM process dropped the session FIFO


_LOCALHOST = ("localhost", "localhost.", "localhost.localdomain", "localhost6",
              "localhost6.localdomain6")


def is_remote_host(host: str) -> bool:
    """pam_systemd's `remote`: a remote host is given and it is not this machine's own name
    (systemd's is_localhost(), which also counts anything under .localhost)."""
    host = host.lower()
    return bool(host) and host not in _LOCALHOST and not host.rstrip(".").endswith(".localhost")


class Owner(UserRef, Protocol):
    """The user as its sessions see it."""

    @property
    def slice(self) -> str: ...
    @property
    def runtime_path(self) -> str: ...
    @property
    def sessions(self) -> dict[str, Session]: ...
    def add_session(self, session: Session) -> None: ...
    def remove_session(self, session: Session) -> None: ...


@dataclass(eq=False)
class Session:
    ctx: Context
    user: Owner
    id: str
    leader_pid: int
    service: str = ""
    tty: str = ""
    tty_from: str = ""  # "" (PAM, or none yet), "utmp" or "utmp-inconsistent": core/utmpttys.py
    remote_host: str = ""
    remote_user: str = ""
    type: str = "unspecified"
    class_: str = "user"
    timestamp: float = 0.0
    leader: ProcessRef | None = None
    started: bool = False
    stopping: bool = False
    released_at: float | None = None
    stop_cause: StopCause | None = None
    decision: KillDecision | None = None
    finalized: bool = False
    # Set by the manager: told once the session is finalized (it tells the user and listeners).
    on_removed: Callable[[Session], None] | None = field(default=None, repr=False)
    timers: Timers = field(init=False, repr=False)
    round: StopRound = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.timers = Timers(self.ctx.ports.clock)
        self.round = StopRound("session", f"Session {self.id}", self.scope, SESSION_SIGNALS,
                               {"session": self.id, "user": self.user.name}, self.ctx.ports,
                               self.timers, self._checkpoint, self.gc,
                               on_signalled=self._signalled)

    @property
    def term_sent(self) -> bool:
        return self.round.term_sent

    @property
    def scope(self) -> str:
        return session_scope(self.user.uid, self.id)

    @property
    def state(self) -> SessionState:
        # logind's session_get_state(): always check closing first.
        if self.stopping or self.released_at is not None:
            return SessionState.CLOSING
        if not self.started:
            return SessionState.OPENING
        return SessionState.ACTIVE

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Create the scope, move the leader in, watch both; persist before anything can race."""
        if self.started:
            return
        cgroups = self.ctx.ports.cgroups
        self.save()
        crashpoint("session.create.intent-saved")
        cgroups.create(self.scope)
        crashpoint("session.create.scope-created")
        try:
            cgroups.move(self.scope, self.leader_pid)
        except ProcessGone:
            cgroups.remove(self.scope)
            self.ctx.ports.store.remove("sessions", self.id)
            raise
        crashpoint("session.create.leader-moved")
        self.started = True
        self._watch()
        self._arm_idle_timer()
        crashpoint("session.create.before-final-save")
        self.save()
        crashpoint("session.create.after-final-save")
        log.info("New session %s of user %s.", self.id, self.user.name, extra=self._fields())
        self.ctx.ports.audit.record("session-new", session=self.id, user=self.user.name,
                                    uid=self.user.uid, leader=self.leader_pid, service=self.service,
                                    tty=self.tty, remote_host=self.remote_host)
        self.ctx.ports.metrics.session_new("api")

    def adopt(self) -> None:
        """Take over the scope the PAM hook made while logoutd did not answer (DESIGN §10); the
        caller then resume()s it. The leader is moved in only if the hook did not get to it."""
        if self.started:
            return
        cgroups = self.ctx.ports.cgroups
        cgroups.create(self.scope)  # there already, unless removed since (it is then empty)
        if self.leader is not None and self.leader.pid not in cgroups.pids(self.scope):
            try:
                cgroups.move(self.scope, self.leader.pid)
            except ProcessGone:
                self.ctx.ports.processes.release(self.leader)
                self.leader = None
        self.started = True
        self.save()
        log.info("New session %s of user %s, adopted from the PAM hook (leader %d%s).", self.id,
                 self.user.name, self.leader_pid, "" if self.leader is not None else ", gone",
                 extra=self._fields())
        self.ctx.ports.audit.record("session-new", session=self.id, user=self.user.name,
                                    uid=self.user.uid, leader=self.leader_pid, service=self.service,
                                    tty=self.tty, remote_host=self.remote_host,
                                    adopted_from="hook")
        self.ctx.ports.metrics.session_new("hook")

    def _fields(self, **more: Any) -> dict[str, Any]:
        """The session's structured log fields (logoutd.logfields), with `more`."""
        return fields(session=self.id, user=self.user.name, uid=self.user.uid,
                      leader=self.leader_pid, **more)

    def _watch(self) -> None:
        ports = self.ctx.ports
        ports.cgroups.watch_empty(self.scope, self._on_scope_event)
        if self.leader is not None:
            ports.processes.watch_exit(self.leader, self._on_leader_exit)

    def resume(self) -> None:
        """After a daemon restart: re-watch, then finish whatever was under way."""
        self._watch()
        if self.stopping:
            if self.decision is not None and self.decision.kill and not self.term_sent:
                self._kill()  # the decision was saved, the round not yet
            else:
                self.round.resume()
        elif self.leader is None:
            log.info("Leader of session %s exited while logoutd was down.", self.id)
            self.stop(StopCause.LEADER_EXIT)
        elif self.released_at is not None:
            self.timers.arm_at("release", self.released_at + self.ctx.config.release_timeout_sec,
                               self._on_release_timeout)
        else:
            self._arm_idle_timer()
        self.gc()

    def release(self) -> None:
        """PAM close_session: closing now; stop if the leader is still there after the timeout."""
        if self.stopping or self.released_at is not None:
            return
        self.released_at = self.ctx.ports.clock.now()
        self.timers.arm("release", self.ctx.config.release_timeout_sec, self._on_release_timeout)
        self.save()

    def stop(self, cause: StopCause, force: bool = False) -> None:
        """The single entry to tear-down (logind's session_stop); runs once per session.

        Callers: leader exit, release timeout, terminate (forced), idle timer (forced),
        scope emptied on its own. A forced stop of a session that is already stopping
        without a kill upgrades it to a kill, as logind's StopUnit(replace) does.
        """
        if not self.started:
            return
        if self.stopping:
            if force and (self.decision is None or not self.decision.kill):
                self.decision = shall_kill(self.ctx.config, self.user.name, forced=True)
                self._kill()  # saves the new decision with the round
            return
        self.timers.cancel("release")
        self.timers.cancel("idle")
        self.stopping = True
        self.stop_cause = cause
        self.decision = shall_kill(self.ctx.config, self.user.name, forced=force)
        kill = self.decision.kill
        # A leader's exit is found again after a restart (the leader is gone, and resume()
        # stops the session), and so is a hang-up of the reference FIFO (reopened at start, it
        # reads EOF): a kill for either is saved once, with its round, before the first signal.
        # Every other stop saves its decision first: a restart could not re-derive it.
        if not (kill and cause in (StopCause.LEADER_EXIT, StopCause.REFERENCE_CLOSED)):
            self._checkpoint()
        crashpoint("session.stop.decided")
        if kill and not force and self.ctx.config.auto_keep:
            self._auto_keep()
        if self.decision.action is StopAction.RECORD or self.ctx.ports.audit.detailed:
            self._record_leftovers()
        # The signals come before the log lines: a logout's processes start exiting at once.
        sent = self.round.send(self.ctx.config.session_stop_timeout_sec) if kill else None
        log.info(
            "Session %s of user %s stopping (%s): %s, %s.",
            self.id, self.user.name, cause, self.decision.action, self.decision.reason,
            extra=self._fields(cause=cause, action=self.decision.action),
        )
        self.ctx.ports.audit.record("session-stop", session=self.id, user=self.user.name,
                                    cause=str(cause), action=str(self.decision.action),
                                    reason=self.decision.reason)
        self.ctx.ports.metrics.session_stopped(str(cause), str(self.decision.action))
        if sent is not None:
            self.round.report(sent)
        elif not kill and self.ctx.ports.cgroups.is_populated(self.scope):
            log.info("Session %s logged out. Waiting for processes to exit.", self.id)
        self.gc()

    def _kill(self) -> None:
        self.round.start(self.ctx.config.session_stop_timeout_sec)

    def _signalled(self, processes: tuple[EndedProcess, ...], count: int) -> None:
        self._remember("killed", processes, count)

    def _remember(self, mode: str, processes: tuple[EndedProcess, ...], count: int) -> None:
        """Keep the kill record for `logoutctl kill-history` and the next login's notice."""
        self.ctx.remember_kill(self.user.uid, self.user.name, KillEntry(
            self.ctx.ports.clock.now(), self.id, self.service, self.tty, mode, count, processes))

    def _auto_keep(self) -> None:
        """AutoKeep=: move listed executables' process trees to scopes of the user's own."""
        ports, config = self.ctx.ports, self.ctx.config
        infos = [i for pid in ports.cgroups.pids(self.scope) if (i := ports.processes.describe(pid))]
        trees = keep_trees(infos, config.auto_keep)
        if not trees:
            return
        policy = may_keep(config, self.user.name, ports.userdb.group_names(self.user.account))
        for root, pids in trees.items():
            name = f"autokeep-{root}.scope"
            ports.audit.record("keep", session=self.id, user=self.user.name, unit=name,
                               pids=pids, granted=policy.allowed,
                               rule=f"AutoKeep= ({'allowed' if policy.allowed else 'denied'}: {policy.rule})")
            ports.metrics.keep_requested("autokeep", policy.allowed)
            if not policy.allowed:
                log.info("Session %s: not keeping process %d (AutoKeep=): %s.", self.id, root, policy.rule)
                continue
            self.ctx.keep_tree(self.user.uid, pids, name)
            log.info("Session %s: kept process %d and %d children in %s of user %s (AutoKeep=).",
                     self.id, root, len(pids) - 1, name, self.user.name)

    def _record_leftovers(self) -> None:
        """What is still in the scope as the session ends, and how each would escape a classic
        logout. Permissive mode always; otherwise only with an audit log (it reads /proc per
        process, which a plain kill does not need)."""
        assert self.decision is not None
        processes, now = self.ctx.ports.processes, self.ctx.ports.clock.now()
        action = "killed" if self.decision.kill else "kept"
        records, infos = [], []
        pids = self.ctx.ports.cgroups.pids(self.scope)
        if len(pids) > RECORD_MAX_PER_SESSION:
            log.warning("Session %s: %d processes left; recording the first %d only.",
                        self.id, len(pids), RECORD_MAX_PER_SESSION)
        for pid in pids[:RECORD_MAX_PER_SESSION]:
            info = processes.describe(pid)
            if info is None:
                continue
            infos.append(info)
            records.append(Leftover(
                session=self.id, user=self.user.name, uid=self.user.uid, action=action,
                recorded_at=now, pid=info.pid, ppid=info.ppid, proc_uid=info.uid, comm=info.comm,
                exe=info.exe, cmdline=info.cmdline, start_time=info.start_time,
                tty=tty_name(info.tty_nr), why=escape_reasons(info),
            ))
        if not records:
            return
        try:
            self.ctx.leftovers.add(records)
        except LogoutdError as e:  # kept in memory; only the file missed them
            log.error("Session %s: cannot write its leftovers file (%s); stopping anyway.",
                      self.id, e.message)
        for record in records:
            self.ctx.ports.audit.record("leftover", **as_dict(record))
        if self.decision.action is StopAction.RECORD:
            self.ctx.ports.metrics.leftovers_recorded([r.comm for r in records])
            first = ended(infos)
            self._remember("permissive", first, len(pids))
            log.info("Session %s: %d processes left behind, not killed (permissive): %s; "
                     "see logoutctl leftovers --session %s.", self.id, len(records),
                     summary(first, len(records), now), self.id)

    def kill(self, who: str, signo: int) -> int:
        """Signal the leader or every process; the session is not stopped (logind's KillSession)."""
        if who == "leader":
            if self.leader is None:
                raise ProcessGone(f"The leader of session {self.id} has exited.")
            try:
                self.ctx.ports.processes.signal(self.leader, signo)
            except ProcessGone:
                raise ProcessGone(f"The leader of session {self.id} has exited.") from None
            return 1
        if who != "all":
            raise InvalidArgument(f"Invalid kill parameter '{who}'")
        return self.ctx.ports.cgroups.signal_all(self.scope, (signo,))

    # -- garbage collection --------------------------------------------------------------

    def may_gc(self) -> bool:
        """Collectable once the scope holds no process (the leader, if in it, is gone too)."""
        return self.started and not self.ctx.ports.cgroups.is_populated(self.scope)

    def gc(self) -> None:
        if self.finalized or not self.may_gc():
            return
        if not self.stopping:
            leader_gone = self.leader is None or not self.ctx.ports.processes.is_alive(self.leader)
            self.stop(StopCause.LEADER_EXIT if leader_gone else StopCause.SCOPE_EMPTY)
            return  # stop() ends in gc()
        self.finalize()

    def finalize(self) -> None:
        """Remove the scope and the state; tell the user. Only for a collectable session."""
        if self.finalized:
            return
        ports = self.ctx.ports
        crashpoint("session.finalize.before-remove")
        if not ports.cgroups.remove(self.scope):
            return  # a process slipped in; the next empty event brings us back
        crashpoint("session.finalize.cgroup-removed")
        self.finalized = True
        self.timers.cancel_all()
        ports.cgroups.unwatch(self.scope)
        if self.leader is not None:
            ports.processes.release(self.leader)
            self.leader = None
        ports.store.remove("sessions", self.id)
        crashpoint("session.finalize.state-removed")
        log.info("Removed session %s.", self.id, extra=fields(session=self.id, user=self.user.name))
        self.ctx.ports.audit.record("session-removed", session=self.id, user=self.user.name)
        if self.on_removed is not None:
            self.on_removed(self)

    # -- events --------------------------------------------------------------------------

    def _on_leader_exit(self) -> None:
        if self.leader is None or self.finalized:
            return
        self.ctx.ports.processes.release(self.leader)
        self.leader = None
        if self.stopping:
            self._checkpoint()  # stop() returns at once; otherwise its own save records this too
        self.stop(StopCause.LEADER_EXIT)
        self.gc()

    def _on_scope_event(self) -> None:
        if not self.finalized:
            self.gc()

    def _on_release_timeout(self) -> None:
        self.stop(StopCause.RELEASE_TIMEOUT)

    def _arm_idle_timer(self) -> None:
        self.timers.arm("idle", self.ctx.config.stop_idle_session_sec, self._on_idle_timer)

    def _on_idle_timer(self) -> None:
        config = self.ctx.config
        threshold = min(config.idle_action_sec, config.stop_idle_session_sec)
        idle_since = self.ctx.ports.processes.tty_idle_since(self.tty) if self.tty else None
        now = self.ctx.ports.clock.now()
        if idle_since is not None and now - idle_since >= threshold:
            log.info('Session "%s" of user "%s" is idle, stopping.', self.id, self.user.name)
            self.stop(StopCause.IDLE, force=True)
            return
        base = idle_since if idle_since is not None else now
        self.timers.arm("idle", max(1.0, base + config.stop_idle_session_sec - now), self._on_idle_timer)

    # -- timers and persistence ----------------------------------------------------------

    @classmethod
    def from_record(cls, ctx: Context, user: Owner, record: dict[str, Any]) -> Session:
        """The session `to_record` saved, its leader re-pinned if it still runs (else None);
        KeyError, TypeError or ValueError for a record it cannot read."""
        leader_pid = int(record["leader_pid"])
        start = record.get("leader_start")
        session = cls(
            ctx=ctx,
            user=user,
            id=str(record["id"]),
            leader_pid=leader_pid,
            service=str(record.get("service", "")),
            tty=str(record.get("tty", "")),
            tty_from=str(record.get("tty_from", "")),
            remote_host=str(record.get("remote_host", "")),
            remote_user=str(record.get("remote_user", "")),
            type=str(record.get("type", "unspecified")),
            class_=str(record.get("class", "user")),
            timestamp=float(record.get("timestamp", 0.0)),
            started=True,
            stopping=bool(record.get("stopping")),
            released_at=_opt_float(record.get("released_at")),
            stop_cause=StopCause(record["stop_cause"]) if record.get("stop_cause") else None,
        )
        session.round.from_record(record)
        if record.get("action"):
            session.decision = KillDecision(StopAction(record["action"]), str(record["reason"]))
        # Last: nothing after it can fail and leave the leader pinned.
        session.leader = ctx.ports.processes.repin(leader_pid, int(start)) if start is not None else None
        return session

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "uid": self.user.uid,
            "leader_pid": self.leader_pid,
            "leader_start": self.leader.start_time if self.leader is not None else None,
            "service": self.service,
            "tty": self.tty,
            "tty_from": self.tty_from,
            "remote_host": self.remote_host,
            "remote_user": self.remote_user,
            "type": self.type,
            "class": self.class_,
            "timestamp": self.timestamp,
            "started": self.started,
            "stopping": self.stopping,
            "released_at": self.released_at,
            "stop_cause": self.stop_cause,
            "action": self.decision.action if self.decision else None,
            "reason": self.decision.reason if self.decision else None,
            **self.round.to_record(),
        }

    def save(self) -> None:
        if not self.finalized:
            self.ctx.ports.store.save("sessions", self.id, self.to_record())

    def _checkpoint(self) -> None:
        """Save on the stop path: a failure is logged and retried, and the stop goes on."""
        checkpoint(f"Session {self.id}", self.save, self.timers)


def _opt_float(value: Any) -> float | None:
    return float(value) if value is not None else None
