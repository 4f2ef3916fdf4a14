"""The registry of units: creating them (through [Policy] and the audit log), finding them,
restoring them after a restart, and the results of finished services (`run --wait`).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from logoutd.core.cgroupnames import unit_cgroup
from logoutd.core.context import Context, log
from logoutd.core.ids import Counter
from logoutd.core.policy import may_keep
from logoutd.core.ports import Account, SpawnRequest
from logoutd.core.unit import (
    UNIT_PATH,
    Unit,
    UnitKind,
    UnitState,
    unit_name,
    unit_result,
)
from logoutd.crashpoints import crashpoint
from logoutd.errors import (
    AccessDenied,
    InvalidArgument,
    LimitsExceeded,
    LogoutdError,
    NoSuchUnit,
    NoSuchUser,
    ProcessGone,
    UnitExists,
)

if TYPE_CHECKING:
    from logoutd.core.users import User

FINISHED_KEPT = 256  # results of finished units kept for `run --wait` (in memory)
MAX_STARTING = 4  # services per user whose child has not exec'd yet: no pile of stuck children


def candidates(name: str) -> tuple[str, str, str]:
    """What a unit name given by a caller may mean, in order: itself, a service, a scope."""
    return (name, f"{name}.service", f"{name}.scope")


class Units:
    """Creates, finds and restores units; the users own them (user.units)."""

    def __init__(self, ctx: Context, users: Mapping[int, User],
                 get_or_add_user: Callable[[Account], User], counter: Counter) -> None:
        self.ctx = ctx
        self._users = users
        self._get_or_add_user = get_or_add_user
        self._counter = counter
        self.finished: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Told of each unit that finished, with its result (the user bus's signals and jobs).
        self.finish_listeners: list[Callable[[Unit, dict[str, Any]], None]] = []

    def _finished(self, unit: Unit) -> None:
        self.finished[unit.key] = {
            "name": unit.name, "uid": unit.user.uid, "kind": str(unit.kind),
            "exit_status": unit.exit_status,
            "result": unit_result(unit.exit_status) if unit.kind is UnitKind.SERVICE else "done",
        }
        self.finished.move_to_end(unit.key)
        while len(self.finished) > FINISHED_KEPT:
            self.finished.popitem(last=False)
        for listener in list(self.finish_listeners):
            try:
                listener(unit, self.finished[unit.key])
            except Exception:
                log.exception("Unit listener %r failed", listener)

    def take_number(self) -> int:
        """A number from the run-uN counter: a client that names its unit run-uN after it (as
        systemd-run does with its bus name) never takes a name logoutd hands out."""
        return self._counter.take()

    def result(self, uid: int, name: str) -> dict[str, Any] | None:
        for candidate in candidates(name):
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
        for candidate in candidates(name):
            if candidate in user.units:
                return user.units[candidate]
        return None

    def lookup(self, name: str, uid: int | None, caller_uid: int) -> Unit:
        """The unit `name` of uid (default: the caller's); root without a uid: the one unit of
        any user with that name, if exactly one matches."""
        unit = self.find(caller_uid if uid is None else uid, name)
        if unit is None and uid is None and caller_uid == 0:
            names = candidates(name)
            found = [u for u in self.all() if u.name in names]
            unit = found[0] if len(found) == 1 else None
        if unit is None:
            raise NoSuchUnit(f"No unit '{name}' known.")
        return unit

    # -- creation --------------------------------------------------------------------------

    def start_scope(self, caller_uid: int, pid: int, name: str | None, *,
                    client: str | None = None) -> Unit:
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
        self._authorize(user, full, client)
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
        """AutoKeep=: a session's process tree (policy checked by the caller) into a new scope.

        The name carries the tree's root pid; should a unit of that name still live (the pid
        was reused), the new one gets a suffix rather than replacing it."""
        full = unit_name(name, UnitKind.SCOPE)
        base, suffix = full.removesuffix(".scope"), 1
        while full in user.units or self.ctx.ports.cgroups.exists(unit_cgroup(user.uid, full)):
            suffix += 1
            full = f"{base}-{suffix}.scope"
        unit = self._new(user, UnitKind.SCOPE, full)
        for pid in pids:
            try:
                self.ctx.ports.cgroups.move(unit.cgroup, pid)
            except ProcessGone:
                continue  # exited meanwhile: nothing to keep
        unit.watch()
        unit.gc()
        return unit

    def start_service(self, caller_uid: int, argv: Sequence[str], name: str | None,
                      env: Mapping[str, str], cwd: str | None,
                      on_started: Callable[[Unit, LogoutdError | None], None], *,
                      client: str | None = None) -> Unit:
        """Spawn argv as the caller's user in a new service, placed in its cgroup before exec.

        Returns the unit, still starting; `on_started` is called once the child exec'd (None)
        or failed (the error), which the spawner bounds by its deadline."""
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
        starting = sum(1 for u in user.units.values()
                       if u.spawning or u.state in (UnitState.STARTING, UnitState.FAILED))
        if starting >= MAX_STARTING:
            raise LimitsExceeded(f"Too many units starting for user {user.name} (at most "
                                 f"{MAX_STARTING} at a time): try again once they have started.")
        full = self._name(user, name, UnitKind.SERVICE)
        self._authorize(user, full, client)
        account = user.account
        environment = {"HOME": account.home, "USER": account.name, "LOGNAME": account.name,
                       "PATH": UNIT_PATH, "XDG_RUNTIME_DIR": user.runtime_path, **env}
        unit = self._new(user, UnitKind.SERVICE, full, UnitState.STARTING)
        unit.log_path = f"{user.runtime_path}/logoutd/{full}.log"
        ports = self.ctx.ports
        try:
            pid = ports.spawner.spawn(SpawnRequest(
                argv=tuple(argv), env=environment, cwd=cwd or account.home, uid=account.uid,
                gid=account.gid, user=account.name, cgroup=unit.cgroup, log_path=unit.log_path))
        except BaseException:
            self._undo(unit)
            raise
        unit.spawning = True
        crashpoint("unit.service.spawned")
        # Our child: its pid cannot be reused while unreaped. Gone already: the report says why.
        with contextlib.suppress(ProcessGone):
            unit.main = ports.processes.pin(pid)
        command = " ".join(argv)

        def reported(error: LogoutdError | None) -> None:
            try:
                if error is None:
                    unit.start_confirmed()
                    crashpoint("unit.service.confirmed")
                    log.info("Started %s of user %s: %s (pid %d).", full, user.name, command,
                             pid)
                else:
                    log.info("Unit %s of user %s did not start: %s", full, user.name,
                             error.message)
                    unit.start_failed()
            finally:  # the caller is answered even if saving the outcome failed
                on_started(unit, error)

        try:
            unit.save()
        finally:  # watched even then: the child's outcome still ends the start
            ports.spawner.watch_start(pid, reported)
        return unit

    def _owner(self, pid: int) -> int:
        uid = self.ctx.ports.processes.owner(pid) if pid > 1 else None
        if uid is None:
            raise ProcessGone(f"Process {pid} does not exist.")
        return uid

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
                full = f"run-u{self._counter.take()}.{kind}"
                if full not in user.units:
                    return full
        full = unit_name(name, kind)
        if full in user.units or self.ctx.ports.cgroups.exists(unit_cgroup(user.uid, full)):
            raise UnitExists(f"Unit {full} already exists.")
        return full

    def _authorize(self, user: User, full: str, client: str | None = None) -> None:
        """[Policy], audited; `client` names the program that asked (the user bus's peer)."""
        ports = self.ctx.ports
        decision = may_keep(self.ctx.config, user.name, ports.userdb.group_names(user.account))
        ports.audit.record("keep", user=user.name, unit=full, granted=decision.allowed,
                           rule=decision.rule, **({"client": client} if client else {}))
        ports.metrics.keep_requested("unit", decision.allowed)
        if not decision.allowed:
            log.warning("Denied %s to user %s: %s.", full, user.name, decision.rule)
            raise AccessDenied(f"Keeping processes after logout is denied: {decision.rule}.")

    def _new(self, user: User, kind: UnitKind, name: str,
             state: UnitState = UnitState.ACTIVE) -> Unit:
        """Persist the intent, then create the cgroup (a crash in between leaves no orphan)."""
        unit = Unit(self.ctx, user, kind, name, created=self.ctx.ports.clock.now(),
                    state=state, on_finished=self._finished)
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
            account = ports.userdb.by_uid(uid)
            if account is None:
                raise ValueError(f"uid {uid} no longer exists")
            user = self._get_or_add_user(account)
            user.started = True
            unit = Unit.from_record(self.ctx, user, record)
        except (KeyError, TypeError, ValueError, LogoutdError) as e:
            log.warning("Ignoring unreadable saved unit %r: %s", record.get("name"), e)
            return None
        unit.on_finished = self._finished
        if not ports.cgroups.exists(unit.cgroup):
            log.info("Unit %s vanished while logoutd was down.", unit.name)
            ports.store.remove("units", unit.key)
            if unit.main is not None:
                ports.processes.release(unit.main)
            return None
        user.units[unit.name] = unit
        return unit
