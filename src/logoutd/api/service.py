"""The one declared API: each method takes the kernel-identified Caller, authorizes, calls the core."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from logoutd import __version__
from logoutd.api.views import SessionView, UnitView, UserView
from logoutd.config.model import Config
from logoutd.config.schema import OPTIONS, render_value
from logoutd.core.killrecords import entry_view
from logoutd.core.leftovers import as_dict as leftover_view
from logoutd.core.manager import Listener, Manager
from logoutd.core.policy import may_keep
from logoutd.core.request import SessionRequest
from logoutd.core.sessions import Session
from logoutd.core.unit import Unit
from logoutd.core.units import FINISHED_KEPT
from logoutd.core.users import User
from logoutd.errors import (
    AccessDenied,
    InvalidArgument,
    LogoutdError,
    NoSuchSession,
    NoSuchUnit,
    NoSuchUser,
)


@dataclass(frozen=True)
class Caller:
    """Who is calling, from SO_PEERCRED (or the bus), never from the request."""

    uid: int
    gid: int
    pid: int

    @property
    def is_root(self) -> bool:
        return self.uid == 0


@dataclass(frozen=True)
class Param:
    type: type
    default: Any = None
    required: bool = False


# A method's result; an awaitable one where the answer waits (on a child, with a deadline).
Answer = dict[str, Any] | Awaitable[dict[str, Any]]


@dataclass(frozen=True)
class Method:
    handler: Callable[..., Answer]
    params: dict[str, Param] = field(default_factory=dict)
    doc: str = ""


@dataclass
class DaemonInfo:
    """What the service needs from the daemon around it (reload, status)."""

    reload: Callable[[], dict[str, Any]]
    config_files: Callable[[], list[str]]
    cgroup_root: str
    started_monotonic: float = field(default_factory=time.monotonic)
    # With --dbus: what the login1 adapter reports (name, address, connected); else None.
    dbus: Callable[[], dict[str, Any] | None] = field(default=lambda: None)


def config_view(config: Config) -> list[dict[str, Any]]:
    """Every option logoutd uses: its effective value in the file's syntax and its source."""
    rows = []
    for option in OPTIONS:
        if option.field is None:
            continue
        value = getattr(config, option.field)
        source = config.source(option.field)
        rows.append({
            "section": option.section,
            "key": option.key,
            "value": render_value(value),
            "unset": value is None,
            "source": {"file": source.file, "line": source.line} if source else None,
            "doc": option.doc,
        })
    return rows


class Service:
    def __init__(self, manager: Manager, info: DaemonInfo) -> None:
        self.manager = manager
        self.info = info
        self.methods: dict[str, Method] = {
            "create_session": Method(self.create_session, {
                "uid": Param(int, required=True), "leader": Param(int, required=True),
                "service": Param(str, ""), "type": Param(str, ""), "class": Param(str, ""),
                "tty": Param(str, ""), "display": Param(str, ""),
                "remote_host": Param(str, ""), "remote_user": Param(str, ""),
            }, "Root: start a session for uid with leader moved into its scope (a leader with a "
               "live session gets that one, existing: true)."),
            "release_session": Method(self.release_session, {
                "id": Param(str), "leader": Param(int),
            }, "Root: the PAM stack closed the session (by id or by leader pid)."),
            "list_sessions": Method(self.list_sessions, {}, "Every session, closing ones too."),
            "get_session": Method(self.get_session, {"id": Param(str, "")},
                                  "One session; '', 'self' or 'auto' mean the caller's."),
            "terminate_session": Method(self.terminate_session, {"id": Param(str, "")},
                                        "Forced stop: kill the session's processes."),
            "kill_session": Method(self.kill_session, {
                "id": Param(str, ""), "who": Param(str, "all"), "signal": Param(int, 15),
            }, "Send a signal to the leader or all processes; the session goes on."),
            "list_users": Method(self.list_users, {}, "Every user with sessions or linger."),
            "get_user": Method(self.get_user, {"uid": Param(int)},
                               "One user; no uid means the caller's (its session's owner)."),
            "terminate_user": Method(self.terminate_user, {"uid": Param(int)},
                                     "Forced stop of every session and unit of the user."),
            "kill_user": Method(self.kill_user, {"uid": Param(int), "signal": Param(int, 15)},
                                "Send a signal to every process of the user."),
            "set_linger": Method(self.set_linger, {"uid": Param(int), "enable": Param(bool, True)},
                                 "Root for anyone, a user for itself: keep the user started."),
            "start_scope": Method(self.start_scope, {"pid": Param(int), "name": Param(str)},
                                  "Move the caller's process (or its own pid) into a new scope."),
            "start_unit": Method(self.start_unit, {
                "argv": Param(list, required=True), "name": Param(str), "env": Param(dict, {}),
                "cwd": Param(str),
            }, "Spawn argv as the caller's user in a new service."),
            "stop_unit": Method(self.stop_unit, {"name": Param(str, required=True),
                                                 "uid": Param(int)},
                                "Owner or root: SIGTERM a unit, SIGKILL after UserStopTimeoutSec=."),
            "list_units": Method(self.list_units, {"uid": Param(int)},
                                 "Every unit (scopes and services), or one user's."),
            "unit_result": Method(self.unit_result, {"name": Param(str, required=True),
                                                     "uid": Param(int)},
                                  "Owner or root: how a finished unit ended (run --wait)."),
            "show_config": Method(self.show_config, {},
                                  "Effective options, each with the file:line it came from."),
            "reload": Method(self.reload, {}, "Root: re-read the configuration."),
            "status": Method(self.status, {}, "Daemon version, uptime, roots, counts."),
            "leftovers": Method(self.leftovers, {"session": Param(str), "uid": Param(int)},
                                "Processes left in scopes when sessions ended, and why "
                                "(a user sees only its own; root every user's)."),
            "kill_history": Method(self.kill_history, {"uid": Param(int),
                                                       "notice": Param(bool, False)},
                                   "What the user's last logouts ended (or, permissive, would "
                                   "have), and whether the user may keep programs; notice: only "
                                   "what the login notice has not shown, now marked shown (a "
                                   "user sees only its own; root anyone's)."),
        }

    def call(self, caller: Caller, method: str, params: dict[str, Any]) -> Answer:
        spec = self.methods.get(method)
        if spec is None:
            raise InvalidArgument(f"Unknown method '{method}'.")
        unknown = sorted(set(params) - set(spec.params))
        if unknown:
            raise InvalidArgument(f"Unknown parameter '{unknown[0]}' for {method}.")
        kwargs: dict[str, Any] = {}
        for name, param in spec.params.items():
            value = params.get(name, param.default)
            if value is None:
                if param.required:
                    raise InvalidArgument(f"Missing parameter '{name}' for {method}.")
            else:
                _check_param(method, name, param.type, value)
            kwargs["class_" if name == "class" else name] = value
        return spec.handler(caller, **kwargs)

    # -- authorization helpers ----------------------------------------------------------

    @staticmethod
    def _require_root(caller: Caller, what: str) -> None:
        if not caller.is_root:
            raise AccessDenied(f"Only root may {what}.")

    @staticmethod
    def _require_owner(caller: Caller, uid: int, what: str) -> None:
        if not caller.is_root and caller.uid != uid:
            raise AccessDenied(f"Access denied: uid {caller.uid} may not {what} of uid {uid}.")

    def _session(self, caller: Caller | None, session_id: str) -> Session:
        if session_id in ("", "self", "auto"):
            if caller is None:  # asked by id only (a D-Bus object path)
                raise NoSuchSession(f"No session '{session_id}' known.")
            session = self.manager.session_by_pid(caller.pid)
            if session is None:
                raise NoSuchSession(f"Caller (pid {caller.pid}) does not belong to any session.")
            return session
        return self.manager.get_session(session_id)

    def _user(self, caller: Caller | None, uid: int | None) -> User:
        if caller is not None:
            return self.manager.get_user(self.uid_for(caller, uid))
        if uid is None:  # asked by uid only (a D-Bus object path)
            raise NoSuchUser("No uid given.")
        return self.manager.get_user(uid)

    def uid_for(self, caller: Caller, uid: int | None) -> int:
        """No uid: the owner of the caller's session (as logind), else the caller's own uid."""
        if uid is not None:
            return uid
        session = self.manager.session_by_pid(caller.pid)
        return session.user.uid if session is not None else caller.uid

    # -- typed queries: the JSON methods below and the D-Bus adapter answer from these ---

    @property
    def config(self) -> Config:
        return self.manager.config

    def sessions(self) -> list[SessionView]:
        """Every session, closing ones too, by id."""
        return [SessionView.of(s) for s in self.manager.all_sessions()]

    def session(self, caller: Caller | None, session_id: str) -> SessionView:
        """One session; '', 'self' and 'auto' mean the caller's (none without a caller)."""
        return SessionView.of(self._session(caller, session_id))

    def session_count(self) -> int:
        return len(self.manager.sessions)

    def session_by_pid(self, pid: int) -> SessionView | None:
        """The session whose scope holds pid (from its cgroup)."""
        session = self.manager.session_by_pid(pid)
        return SessionView.of(session) if session is not None else None

    def users(self) -> list[UserView]:
        """Every user with sessions or linger, by uid."""
        users = sorted((u for u in self.manager.users.values() if not u.finalized),
                       key=lambda u: u.uid)
        return [UserView.of(u) for u in users]

    def user(self, caller: Caller | None, uid: int | None) -> UserView:
        """One user; no uid: the owner of the caller's session, else the caller's own."""
        return UserView.of(self._user(caller, uid))

    def user_by_pid(self, pid: int) -> UserView | None:
        """The user whose slice holds pid: a session, a unit, or the slice itself."""
        user = self.manager.user_by_pid(pid)
        return UserView.of(user) if user is not None else None

    def user_sessions(self, uid: int) -> list[SessionView]:
        """The sessions of a user (none for a user that is not there)."""
        user = self.manager.users.get(uid)
        return [SessionView.of(s) for s in user.sessions.values()] if user is not None else []

    # -- for the D-Bus adapter (same rules, other shapes) ----------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Tell listener of sessions and users coming and going (login1's signals)."""
        self.manager.listeners.append(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self.manager.listeners:
            self.manager.listeners.remove(listener)

    def reference_closed(self, session_id: str) -> bool:
        """The PAM process holding the session's reference went away: stop it as at a logout.
        False if there is no such session (any more)."""
        session = self.manager.sessions.get(session_id)
        if session is None:
            return False
        self.manager.reference_closed(session)
        return True

    def set_linger_as(self, caller: Caller, uid: int, enable: bool, *,
                      authority: str) -> dict[str, Any]:
        """Linger authorized elsewhere (polkit said yes): skip the owner and LingerSelfAllow=
        checks, record who asked and who allowed it."""
        return self._set_linger(caller, uid, enable, rule=authority)

    # -- methods ------------------------------------------------------------------------

    def create_session(self, caller: Caller, *, uid: int, leader: int, service: str, type: str,
                       class_: str, tty: str, display: str, remote_host: str,
                       remote_user: str) -> dict[str, Any]:
        self._require_root(caller, "create sessions")
        started = time.monotonic()
        session, existing = self.manager.open_session(SessionRequest(
            uid=uid, leader=leader, service=service, type=type, class_=class_, tty=tty,
            display=display, remote_host=remote_host, remote_user=remote_user,
        ))
        if not existing:
            self.manager.ports.metrics.session_create_seconds(time.monotonic() - started)
        return {"session": SessionView.of(session).json(), "runtime_path": session.user.runtime_path,
                "existing": existing}

    def release_session(self, caller: Caller, *, id: str | None,
                        leader: int | None) -> dict[str, Any]:
        self._require_root(caller, "release sessions")
        if id is not None:
            session = self.manager.get_session(id)
        elif leader is not None:
            found = self.manager.session_by_leader(leader)
            if found is None:
                raise NoSuchSession(f"No session with leader {leader} known.")
            session = found
        else:
            raise InvalidArgument("release_session needs 'id' or 'leader'.")
        session.release()
        return {"session": SessionView.of(session).json()}

    def list_sessions(self, caller: Caller) -> dict[str, Any]:
        return {"sessions": [s.json() for s in self.sessions()]}

    def get_session(self, caller: Caller, *, id: str) -> dict[str, Any]:
        return {"session": self.session(caller, id).json()}

    def terminate_session(self, caller: Caller, *, id: str) -> dict[str, Any]:
        session = self._session(caller, id)
        self._require_owner(caller, session.user.uid, f"terminate session {session.id}")
        self.manager.terminate_session(session)
        return {"session": SessionView.of(session).json()}

    def kill_session(self, caller: Caller, *, id: str, who: str, signal: int) -> dict[str, Any]:
        session = self._session(caller, id)
        self._require_owner(caller, session.user.uid, f"kill session {session.id}")
        signo = _signal(signal)
        return {"signalled": session.kill(who, signo)}

    def list_users(self, caller: Caller) -> dict[str, Any]:
        return {"users": [u.json() for u in self.users()]}

    def get_user(self, caller: Caller, *, uid: int | None) -> dict[str, Any]:
        return {"user": self.user(caller, uid).json()}

    def terminate_user(self, caller: Caller, *, uid: int | None) -> dict[str, Any]:
        user = self._user(caller, uid)
        self._require_owner(caller, user.uid, "terminate the user")
        self.manager.terminate_user(user)
        return {"user": UserView.of(user).json()}

    def kill_user(self, caller: Caller, *, uid: int | None, signal: int) -> dict[str, Any]:
        user = self._user(caller, uid)
        self._require_owner(caller, user.uid, "kill the processes")
        return {"signalled": self.manager.kill_user(user, _signal(signal))}

    def set_linger(self, caller: Caller, *, uid: int | None, enable: bool) -> dict[str, Any]:
        uid = self.uid_for(caller, uid)
        verb = "enable" if enable else "disable"
        self._require_owner(caller, uid, f"{verb} linger")
        if not caller.is_root:
            decision = self.manager.linger_policy(uid)
            if not decision.allowed:
                self.manager.ports.audit.record("linger", uid=uid, enable=enable, by=caller.uid,
                                                granted=False, rule=decision.rule)
                raise AccessDenied(f"Linger denied: {decision.rule}.")
        return self._set_linger(caller, uid, enable)

    def _set_linger(self, caller: Caller, uid: int, enable: bool,
                    **rule: str) -> dict[str, Any]:
        """Set linger once allowed, audited (`rule`: who allowed it, when not our own checks)."""
        account = self.manager.set_linger(uid, enable)
        self.manager.ports.audit.record("linger", uid=uid, user=account.name, enable=enable,
                                        by=caller.uid, granted=True, **rule)
        return {"uid": account.uid, "name": account.name, "linger": enable}

    def start_scope(self, caller: Caller, *, pid: int | None, name: str | None,
                    client: str | None = None) -> dict[str, Any]:
        """`client`: the program that asked, for the audit log (the user bus; not a parameter)."""
        unit = self.manager.units.start_scope(caller.uid, caller.pid if pid is None else pid, name,
                                              client=client)
        return self._started(unit)

    def start_unit(self, caller: Caller, *, argv: list[str], name: str | None,
                   env: dict[str, str], cwd: str | None,
                   client: str | None = None) -> Awaitable[dict[str, Any]]:
        """Answered once the child exec'd or failed; the loop serves everyone meanwhile."""
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def started(unit: Unit, error: LogoutdError | None) -> None:
            if answer.done():  # the connection's task was cancelled (the server closing)
                return
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(self._started(unit))

        try:
            self.manager.units.start_service(caller.uid, argv, name, env, cwd, started,
                                             client=client)
        except BaseException:
            answer.cancel()  # answered with this error; the outcome, later, goes nowhere
            raise
        return answer

    def _started(self, unit: Unit) -> dict[str, Any]:
        """The unit, and what the user is told: where its output goes, when it will end."""
        config = self.manager.config
        delay, limit = config.user_stop_delay_sec, config.keep_user_max_sec
        return {"unit": UnitView.of(unit).json(), "log": unit.log_path or None,
                "linger": unit.user.lingering,
                "stop_delay_sec": None if delay == math.inf else delay,
                "keeps_user": config.keep_user_while_units,
                "keep_user_max_sec": None if limit == math.inf else limit}

    def stop_unit(self, caller: Caller, *, name: str, uid: int | None) -> dict[str, Any]:
        unit = self.manager.units.lookup(name, uid, caller.uid)
        self._require_owner(caller, unit.user.uid, f"stop unit {unit.name}")
        signalled = unit.stop()
        return {"unit": UnitView.of(unit).json(), "signalled": signalled}

    def unit_result(self, caller: Caller, *, name: str, uid: int | None) -> dict[str, Any]:
        uid = caller.uid if uid is None else uid
        self._require_owner(caller, uid, f"see unit {name}")
        result = self.manager.units.result(uid, name)
        if result is None:
            raise NoSuchUnit(f"No finished unit '{name}' of uid {uid} known (results are kept "
                             f"in memory for the last {FINISHED_KEPT} units).")
        return {"result": result}

    def list_units(self, caller: Caller, *, uid: int | None) -> dict[str, Any]:
        units = [u for u in self.manager.units.all() if uid is None or u.user.uid == uid]
        return {"units": [UnitView.of(u).json() for u in units]}

    def show_config(self, caller: Caller) -> dict[str, Any]:
        return {"files": self.info.config_files(), "options": config_view(self.manager.config)}

    def reload(self, caller: Caller) -> dict[str, Any]:
        self._require_root(caller, "reload the configuration")
        return self.info.reload()

    def leftovers(self, caller: Caller, *, session: str | None, uid: int | None) -> dict[str, Any]:
        """Root sees every record; a user only its own (command lines can hold secrets)."""
        if not caller.is_root:
            if uid is not None and uid != caller.uid:
                raise AccessDenied(f"Access denied: uid {caller.uid} may not see the leftovers "
                                   f"of uid {uid} (command lines can hold secrets); only root "
                                   "may.")
            if session is not None and any(
                    r.uid != caller.uid for r in self.manager.leftovers.query(session=session)):
                raise AccessDenied(f"Access denied: session {session} is not uid {caller.uid}'s; "
                                   "only root may see other users' leftovers.")
            uid = caller.uid
        records = self.manager.leftovers.query(session=session, uid=uid)
        return {"leftovers": [leftover_view(r) for r in records]}

    def kill_history(self, caller: Caller, *, uid: int | None, notice: bool) -> dict[str, Any]:
        """As leftovers: a user sees only its own records (command lines can hold secrets)."""
        uid = caller.uid if uid is None else uid
        if uid != caller.uid:
            if not caller.is_root:
                raise AccessDenied(f"Access denied: uid {caller.uid} may not see the kill history "
                                   f"of uid {uid} (command lines can hold secrets); only root may.")
            if notice:
                raise InvalidArgument("The login notice is for the caller's own history only.")
        kills = self.manager.kills
        entries = kills.take_unshown(uid) if notice else kills.entries(uid)
        account = self.manager.ports.userdb.by_uid(uid)
        name = account.name if account is not None else str(uid)
        groups = self.manager.ports.userdb.group_names(account) if account is not None else ()
        keep = may_keep(self.manager.config, name, groups)
        return {"uid": uid, "user": name, "entries": [entry_view(e) for e in entries],
                "keep_allowed": keep.allowed, "keep_rule": keep.rule}

    def status(self, caller: Caller) -> dict[str, Any]:
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime": round(time.monotonic() - self.info.started_monotonic, 3),
            "cgroup_root": self.info.cgroup_root,
            "sessions": len(self.manager.sessions),
            "users": len([u for u in self.manager.users.values() if not u.finalized]),
            "config_files": self.info.config_files(),
            "dbus": self.info.dbus(),
        }


_ITEM_TYPES: dict[type, str] = {list: "list of strings", dict: "object of strings"}


def _check_param(method: str, name: str, expected: type, value: Any) -> None:
    """str/int/bool as they are; list: of strings; dict: string to string; no NUL anywhere."""
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise InvalidArgument(f"Parameter '{name}' of {method} must be "
                              f"{_ITEM_TYPES.get(expected, expected.__name__)}, "
                              f"not {type(value).__name__}.")
    strings = value if isinstance(value, list) else (
        [*value.keys(), *value.values()] if isinstance(value, dict) else [value])
    if expected in _ITEM_TYPES and not all(isinstance(s, str) for s in strings):
        raise InvalidArgument(f"Parameter '{name}' of {method} must be {_ITEM_TYPES[expected]}.")
    if any(isinstance(s, str) and "\0" in s for s in strings):
        raise InvalidArgument(f"Parameter '{name}' of {method} contains NUL.")


def _signal(number: int) -> int:
    if not 1 <= number < signal.NSIG:
        raise InvalidArgument(f"Invalid signal {number}")
    return number


