"""Units under user@UID.service: scopes (existing processes moved in) and services (spawned).

A unit lives until its cgroup is empty; it dies with its *user* (User.stop signals the whole
user@UID.service subtree), never with a session. Creating one goes through [Policy] and the
audit log.
"""

from __future__ import annotations

import enum
import math
import re
import signal
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from logoutd.core.context import Context, log
from logoutd.core.policy import may_keep
from logoutd.core.ports import Account, ProcessRef, SpawnRequest
from logoutd.core.timers import Timers
from logoutd.crashpoints import crashpoint
from logoutd.errors import AccessDenied, InvalidArgument, LogoutdError, NoSuchUser, ProcessGone

if TYPE_CHECKING:
    from logoutd.core.users import User

NAME_MAX = 200  # bytes, suffix included
_NAME = re.compile(r"[A-Za-z0-9:_.@-]+")
UNIT_PATH = "/usr/local/bin:/usr/bin:/bin"
COUNTER_BLOCK = 16


class UnitKind(enum.StrEnum):
    SCOPE = "scope"  # processes that asked to stay were moved in (run --scope)
    SERVICE = "service"  # a command the daemon spawned as the user (run --unit)


class UnitState(enum.StrEnum):
    ACTIVE = "active"  # running
    STOPPING = "stopping"  # SIGTERM sent (stop-unit or the user's stop); removed once empty


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


@dataclass(eq=False)
class Unit:
    ctx: Context
    user: User
    kind: UnitKind
    name: str
    created: float = 0.0
    state: UnitState = UnitState.ACTIVE
    main: ProcessRef | None = None  # services: the spawned process, while it runs
    log_path: str = ""  # services: stdout and stderr, appended
    sigkill_at: float | None = None
    exit_status: int | None = None  # services: the main process's exit code (< 0: its signal)
    main_lost: bool = False  # restored: the main process exited while logoutd was down
    finalized: bool = False
    on_finished: Callable[[Unit], None] | None = field(default=None, repr=False)
    timers: Timers = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.timers = Timers(self.ctx.ports.clock)

    @property
    def cgroup(self) -> str:
        return f"{self.user.service}/app.slice/{self.name}"

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
        self.watch()
        if self.sigkill_at is not None:
            delay = max(0.0, self.sigkill_at - self.ctx.ports.clock.now())
            self.timers.arm("sigkill", delay, self._on_sigkill_timeout)
        if self.main_lost and self.state is UnitState.ACTIVE and not self.may_gc():
            log.info("Unit %s: main process exited while logoutd was down, stopping the rest.",
                     self.name)
            self.stop()
            return
        self.gc()

    def stop(self) -> int:
        """stop-unit: SIGTERM and SIGCONT to every process, SIGKILL after UserStopTimeoutSec=."""
        cgroups = self.ctx.ports.cgroups
        count = 0
        if self.state is not UnitState.STOPPING:
            self.state = UnitState.STOPPING
            count = cgroups.signal_all(self.cgroup, (signal.SIGTERM, signal.SIGCONT))
            timeout = self.ctx.config.user_stop_timeout_sec
            if cgroups.is_populated(self.cgroup) and timeout != math.inf:
                self.sigkill_at = self.ctx.ports.clock.now() + timeout
                self.timers.arm("sigkill", timeout, self._on_sigkill_timeout)
            self.save()
            log.info("Unit %s of user %s stopping: sent SIGTERM to %d processes.",
                     self.name, self.user.name, count)
        self.gc()
        return count

    def user_stopping(self) -> None:
        """The user stops: it signals (and later kills) the whole subtree, this unit included."""
        if self.state is not UnitState.STOPPING:
            self.state = UnitState.STOPPING
            self.save()

    def _on_sigkill_timeout(self) -> None:
        if not self.finalized and self.ctx.ports.cgroups.is_populated(self.cgroup):
            log.info("Unit %s: stop timed out, killing what is left (cgroup.kill).", self.name)
            self.ctx.ports.cgroups.kill(self.cgroup)
        self.gc()

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
        self.save()

    def _on_cgroup_event(self) -> None:
        self.gc()

    def may_gc(self) -> bool:
        return not self.ctx.ports.cgroups.is_populated(self.cgroup)

    def gc(self) -> None:
        if self.finalized or not self.may_gc():
            return
        self._reap_main()
        self.finalize()

    def finalize(self) -> None:
        """Remove the cgroup and the state; the user may then be collected."""
        if self.finalized or not self.ctx.ports.cgroups.remove(self.cgroup):
            return
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
        if self.user.units.get(self.name) is self:
            del self.user.units[self.name]

    # -- persistence -----------------------------------------------------------------------

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
            "sigkill_at": self.sigkill_at,
            "exit_status": self.exit_status,
        }

    def save(self) -> None:
        if not self.finalized:
            self.ctx.ports.store.save("units", self.key, self.to_record())


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


FINISHED_KEPT = 256  # results of finished units kept for `run --wait` (in memory)


class Units:
    """Creates, finds and restores units; the users own them (user.units)."""

    def __init__(self, ctx: Context, users: Mapping[int, User],
                 get_or_add_user: Callable[[Account], User]) -> None:
        self.ctx = ctx
        self._users = users
        self._get_or_add_user = get_or_add_user
        self._counter = (0, 0)
        self.finished: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def _finished(self, unit: Unit) -> None:
        self.finished[unit.key] = {
            "name": unit.name, "uid": unit.user.uid, "kind": str(unit.kind),
            "exit_status": unit.exit_status,
            "result": unit_result(unit.exit_status) if unit.kind is UnitKind.SERVICE else "done",
        }
        self.finished.move_to_end(unit.key)
        while len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)

    def result(self, uid: int, name: str) -> dict[str, Any] | None:
        for candidate in (name, f"{name}.service", f"{name}.scope"):
            found = self.finished.get(f"{uid}-{candidate}")
            if found is not None:
                return found
        return None

    def all(self) -> list[Unit]:
        return sorted((u for user in self._users.values() if not user.finalized
                       for u in user.units.values()), key=lambda u: (u.user.uid, u.name))

    def find(self, uid: int, name: str) -> Unit | None:
        user = self._users.get(uid)
        if user is None or user.finalized:
            return None
        for candidate in (name, f"{name}.service", f"{name}.scope"):
            if candidate in user.units:
                return user.units[candidate]
        return None

    # -- creation --------------------------------------------------------------------------

    def start_scope(self, caller_uid: int, pid: int, name: str | None) -> Unit:
        """Move pid (the caller's own process; root: anyone's) into a new scope of its user."""
        ports = self.ctx.ports
        owner = self._owner(pid)
        uid = owner if caller_uid == 0 else caller_uid
        if name:
            unit_name(name, UnitKind.SCOPE)  # a bad name is refused before anything else
        if owner != uid:
            raise AccessDenied(f"Access denied: process {pid} does not belong to uid {uid}.")
        user = self._user(uid)
        if caller_uid != 0:
            self._check_tracked(pid, user)
        full = self._name(user, name, UnitKind.SCOPE)
        self._authorize(user, full)
        ref = ports.processes.pin(pid)
        try:
            # Re-check the pinned process: a pid reused since the first look is not smuggled in.
            if self._owner(pid) != uid or not ports.processes.is_alive(ref):
                raise AccessDenied(f"Access denied: process {pid} does not belong to uid {uid}.")
            unit = self._new(user, UnitKind.SCOPE, full)
            try:
                ports.cgroups.move(unit.cgroup, pid)
                crashpoint("unit.scope.moved")
                if not ports.processes.is_alive(ref):
                    raise ProcessGone(f"Process {pid} exited while it was being moved.")
            except BaseException:
                self._undo(unit)
                raise
        finally:
            ports.processes.release(ref)
        unit.watch()
        log.info("Moved process %d of user %s into %s.", pid, user.name, full)
        unit.gc()
        return unit

    def adopt(self, user: User, pids: Sequence[int], name: str) -> Unit:
        """AutoKeep=: a session's process tree (policy checked by the caller) into a new scope."""
        unit = self._new(user, UnitKind.SCOPE, unit_name(name, UnitKind.SCOPE))
        for pid in pids:
            try:
                self.ctx.ports.cgroups.move(unit.cgroup, pid)
            except ProcessGone:
                continue  # exited meanwhile: nothing to keep
        unit.watch()
        unit.gc()
        return unit

    def start_service(self, caller_uid: int, argv: Sequence[str], name: str | None,
                      env: Mapping[str, str], cwd: str | None) -> Unit:
        """Spawn argv as the caller's user in a new service, placed in its cgroup before exec."""
        if name:
            unit_name(name, UnitKind.SERVICE)
        if not argv or not argv[0]:
            raise InvalidArgument("No command given.")
        if cwd is not None and not cwd.startswith("/"):
            raise InvalidArgument(f"Working directory '{cwd}' is not an absolute path.")
        for key in env:
            if not key or "=" in key:
                raise InvalidArgument(f"Invalid environment variable name '{key}'.")
        user = self._user(caller_uid)
        full = self._name(user, name, UnitKind.SERVICE)
        self._authorize(user, full)
        account = user.account
        environment = {"HOME": account.home, "USER": account.name, "LOGNAME": account.name,
                       "PATH": UNIT_PATH, "XDG_RUNTIME_DIR": user.runtime_path, **env}
        unit = self._new(user, UnitKind.SERVICE, full)
        unit.log_path = f"{user.runtime_path}/logoutd/{full}.log"
        ports = self.ctx.ports
        try:
            pid = ports.spawner.spawn(SpawnRequest(
                argv=tuple(argv), env=environment, cwd=cwd or account.home, uid=account.uid,
                gid=account.gid, user=account.name, cgroup=unit.cgroup, log_path=unit.log_path))
        except BaseException:
            self._undo(unit)
            raise
        crashpoint("unit.service.spawned")
        try:
            unit.main = ports.processes.pin(pid)  # our child: its pid cannot be reused unreaped
        except ProcessGone:
            ports.spawner.reap(pid)
        unit.save()
        unit.watch()
        log.info("Started %s of user %s: %s (pid %d).", full, user.name, " ".join(argv), pid)
        unit.gc()
        return unit

    def _owner(self, pid: int) -> int:
        info = self.ctx.ports.processes.describe(pid) if pid > 1 else None
        if info is None:
            raise ProcessGone(f"Process {pid} does not exist.")
        return info.uid

    def _check_tracked(self, pid: int, user: User) -> None:
        """A user keeps only processes of their own sessions or units (DESIGN §10), not e.g. a
        system service that happens to run under their uid."""
        root = self.ctx.ports.cgroups.root_in_mount.rstrip("/")
        if not self.ctx.ports.processes.cgroup_of(pid).startswith(f"{root}/{user.slice}/"):
            raise AccessDenied(f"Access denied: process {pid} is not in a session or unit of "
                               f"user {user.name}.")

    def _user(self, uid: int) -> User:
        user = self._users.get(uid)
        if user is None or user.finalized:
            account = self.ctx.ports.userdb.by_uid(uid)
            who = f"{account.name} (uid {uid})" if account else f"uid {uid}"
            raise NoSuchUser(f"User {who} has no session and does not linger: log in, or "
                             "enable linger, before starting units.")
        if user.stopping:
            raise NoSuchUser(f"User {user.name} (uid {uid}) is stopping: log in again first.")
        return user

    def _name(self, user: User, name: str | None, kind: UnitKind) -> str:
        if name is None or name == "":
            while True:
                full = f"run-u{self._next_number()}.{kind}"
                if full not in user.units:
                    return full
        full = unit_name(name, kind)
        if full in user.units or self.ctx.ports.cgroups.exists(
                f"{user.service}/app.slice/{full}"):
            raise LogoutdError(f"Unit {full} already exists.")
        return full

    def _next_number(self) -> int:
        first, limit = self._counter
        if first >= limit:
            first, limit = self.ctx.ports.store.reserve_counter(COUNTER_BLOCK)
        self._counter = (first + 1, limit)
        return first

    def _authorize(self, user: User, full: str) -> None:
        ports = self.ctx.ports
        decision = may_keep(self.ctx.config, user.name, ports.userdb.group_names(user.account))
        ports.audit.record("keep", user=user.name, unit=full, granted=decision.allowed,
                           rule=decision.rule)
        if not decision.allowed:
            log.warning("Denied %s to user %s: %s.", full, user.name, decision.rule)
            raise AccessDenied(f"Keeping processes after logout is denied: {decision.rule}.")

    def _new(self, user: User, kind: UnitKind, name: str) -> Unit:
        """Persist the intent, then create the cgroup (a crash in between leaves no orphan)."""
        unit = Unit(self.ctx, user, kind, name, created=self.ctx.ports.clock.now(),
                    on_finished=self._finished)
        user.units[name] = unit
        unit.save()
        crashpoint("unit.new.intent-saved")
        self.ctx.ports.cgroups.create(unit.cgroup)
        return unit

    def _undo(self, unit: Unit) -> None:
        self.ctx.ports.cgroups.remove(unit.cgroup)
        unit.forget()

    # -- restart ---------------------------------------------------------------------------

    def restore(self) -> None:
        """Reload saved units; drop those whose cgroup vanished; collect the empty ones."""
        restored: list[Unit] = []
        for record in self.ctx.ports.store.load_all("units"):
            unit = self._restore(record)
            if unit is not None:
                restored.append(unit)
        for unit in restored:
            unit.resume()

    def _restore(self, record: dict[str, Any]) -> Unit | None:
        ports = self.ctx.ports
        try:
            uid = int(record["uid"])
            kind = UnitKind(record["kind"])
            name = unit_name(str(record["name"]), kind)
            account = ports.userdb.by_uid(uid)
            if account is None:
                raise ValueError(f"uid {uid} no longer exists")
            user = self._get_or_add_user(account)
            user.started = True
            main_pid, start = record.get("main_pid"), record.get("main_start")
            main = (ports.processes.repin(int(main_pid), int(start))
                    if main_pid is not None and start is not None else None)
            sigkill_at = record.get("sigkill_at")
            unit = Unit(self.ctx, user, kind, name, created=float(record.get("created") or 0.0),
                        state=UnitState(record.get("state", "active")), main=main,
                        log_path=str(record.get("log_path") or ""),
                        sigkill_at=float(sigkill_at) if sigkill_at is not None else None,
                        on_finished=self._finished)
            status = record.get("exit_status")
            unit.exit_status = int(status) if status is not None else None
            unit.main_lost = kind is UnitKind.SERVICE and main_pid is not None and main is None
        except (KeyError, TypeError, ValueError, LogoutdError) as e:
            log.warning("Ignoring unreadable saved unit %r: %s", record.get("name"), e)
            return None
        if not ports.cgroups.exists(unit.cgroup):
            log.info("Unit %s vanished while logoutd was down.", name)
            ports.store.remove("units", unit.key)
            if main is not None:
                ports.processes.release(main)
            return None
        user.units[name] = unit
        return unit
