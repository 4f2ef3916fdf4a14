"""The manager: owns sessions and users, creates and looks them up, restores them after a restart."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, Protocol

from logoutd.config.model import Config
from logoutd.core.cgroupnames import (
    USERS,
    scope_session,
    session_in_path,
    session_scope,
    slice_uid,
    uid_in_path,
    user_slice,
)
from logoutd.core.context import Context, log
from logoutd.core.hookrecords import HOOK_KIND, parse_hook_record
from logoutd.core.ids import Counter
from logoutd.core.killrecords import KillHistory
from logoutd.core.leftovers import LeftoverLog
from logoutd.core.policy import PolicyDecision, may_linger_self
from logoutd.core.ports import Account, Ports, StoredRecord
from logoutd.core.request import SessionRequest
from logoutd.core.sessions import Session, SessionState, StopCause
from logoutd.core.units import Units
from logoutd.core.users import User
from logoutd.crashpoints import crashpoint
from logoutd.errors import (
    InvalidArgument,
    LimitsExceeded,
    LogoutdError,
    NoSuchSession,
    NoSuchUser,
    ProcessGone,
    SessionBusy,
)

SESSION_TYPES = ("unspecified", "tty", "x11", "wayland", "mir", "web")
SESSION_CLASSES = ("user", "greeter", "lock-screen", "background")


class Listener(Protocol):
    """Told about sessions and users coming and going (the D-Bus adapter's signals, FIFOs)."""

    def session_new(self, session: Session) -> None: ...
    def session_removed(self, session: Session) -> None: ...
    def user_new(self, user: User) -> None: ...
    def user_removed(self, user: User) -> None: ...


class Manager:
    def __init__(self, ports: Ports, config: Config) -> None:
        self.ports = ports
        self.leftovers = LeftoverLog(ports.store)
        self.kills = KillHistory(ports.store)
        self.ctx = Context(ports, config, self.leftovers, self._keep_tree, self.kills)
        self.sessions: dict[str, Session] = {}
        self.users: dict[int, User] = {}
        self._by_leader: dict[int, Session] = {}  # release_session looks up by leader pid
        self._counter = Counter(ports.store)
        self.units = Units(self.ctx, self.users, self._get_or_add_user, self._counter)
        self.listeners: list[Listener] = []

    @property
    def config(self) -> Config:
        return self.ctx.config

    def set_config(self, config: Config) -> None:
        """Applies to stops decided from now on; abandoned scopes are not revisited (as logind).
        Sessionless users are looked at again: KeepUserWhileUnits= may now hold or release them."""
        self.ctx.config = config
        for user in list(self.users.values()):
            user.gc()

    # -- creation -----------------------------------------------------------------------

    def create_session(self, request: SessionRequest) -> Session:
        return self.open_session(request)[0]

    def open_session(self, request: SessionRequest) -> tuple[Session, bool]:
        """create_session, idempotent per leader (DESIGN §10): (the session, whether it existed).

        A late request for a leader that the PAM hook has meanwhile put into a scope of its own
        adopts that scope; a leader with a live session gets that session back. Anyone else
        already in a user slice (su/sudo inside a session) is busy.
        """
        if request.leader <= 1:
            raise InvalidArgument("Invalid leader PID")
        account = self.ports.userdb.by_uid(request.uid)
        if account is None:
            raise NoSuchUser(f"No user with uid {request.uid} known to the user database.")
        type_, class_ = _type_and_class(request)
        self.adopt_hook_records()
        # Before pin(): pinning the leader again would replace the session's own pidfd.
        existing = self.session_by_leader(request.leader)
        if existing is not None and existing.leader is not None and (
                self.ports.processes.is_alive(existing.leader)):
            if existing.user.uid != request.uid or existing.state is SessionState.CLOSING:
                raise SessionBusy(f"Leader {request.leader} already has session {existing.id}.")
            log.debug("Leader %d already has session %s: answering with it.", request.leader,
                      existing.id)
            return existing, True
        leader = self.ports.processes.pin(request.leader)
        try:
            self._check_not_in_session(request.leader)
            if len(self.sessions) >= self.config.sessions_max:
                raise LimitsExceeded(
                    f"Maximum number of sessions ({self.config.sessions_max}) reached, "
                    "refusing further sessions."
                )
            user = self._get_or_add_user(account)
            user.start()
            session = Session(
                ctx=self.ctx,
                user=user,
                id=self._pick_id(request.leader, user.uid),
                leader_pid=request.leader,
                leader=leader,
                service=request.service,
                tty=request.tty.removeprefix("/dev/"),
                remote_host=request.remote_host,
                remote_user=request.remote_user,
                type=type_,
                class_=class_,
                timestamp=self.ports.clock.now(),
            )
            self._add(session)
            try:
                session.start()
            except Exception:
                self._forget(session)
                user.gc()
                raise
        except BaseException:
            self.ports.processes.release(leader)
            raise
        self._tell(lambda listener: listener.session_new(session))
        return session, False

    def _check_not_in_session(self, pid: int) -> None:
        """su/sudo inside a session: the leader already runs in one of our user slices."""
        path = self._below_root(self.ports.processes.cgroup_of(pid))
        if path is not None and uid_in_path(path) is not None:
            raise SessionBusy("Already running in a session or user slice")

    def _pick_id(self, leader: int, uid: int) -> str:
        """The audit session id, else c<N>; never one in use or with a scope already there (the
        PAM hook's, made while logoutd did not answer, or a leftover)."""

        def free(candidate: str) -> bool:
            return candidate not in self.sessions and not self.ports.cgroups.exists(
                session_scope(uid, candidate))

        audit = self.ports.processes.audit_session_id(leader)
        if audit is not None and free(str(audit)):
            return str(audit)
        while True:
            candidate = f"c{self._counter.take()}"
            if free(candidate):
                return candidate

    def _get_or_add_user(self, account: Any) -> User:
        user = self.users.get(account.uid)
        if user is None or user.finalized:
            user = User(self.ctx, account, on_removed=self._user_removed)
            self.users[account.uid] = user
            self._tell(lambda listener: listener.user_new(user))
        return user

    def _tell(self, event: Callable[[Listener], None]) -> None:
        """Listeners are edges: one failing is logged and never undoes the core's work."""
        for listener in list(self.listeners):
            try:
                event(listener)
            except Exception:
                log.exception("Listener %r failed", listener)

    def start_lingering_users(self) -> None:
        for name in self.ports.userfiles.lingering_names():
            account = self.ports.userdb.by_name(name)
            if account is None:
                log.warning("Linger file for unknown user %s, ignoring.", name)
                continue
            self._get_or_add_user(account).start()

    # -- lookup -------------------------------------------------------------------------

    def get_session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise NoSuchSession(f"No session '{session_id}' known.")
        return session

    def _below_root(self, path: str) -> str | None:
        """A cgroup path relative to the managed root ("/user.slice/..."), None outside it (a
        scope of the same name in another tree, e.g. systemd's, is not ours)."""
        root = self.ports.cgroups.root_in_mount.rstrip("/")
        return path[len(root):] if path.startswith(root + "/") else None

    def _cgroup_below_root(self, pid: int) -> str | None:
        try:
            return self._below_root(self.ports.processes.cgroup_of(pid))
        except ProcessGone:
            return None

    def session_by_pid(self, pid: int) -> Session | None:
        """The session whose scope holds pid (from its cgroup, never from what it claims)."""
        path = self._cgroup_below_root(pid)
        session_id = session_in_path(path) if path is not None else None
        return self.sessions.get(session_id) if session_id is not None else None

    def user_by_pid(self, pid: int) -> User | None:
        """The user whose slice holds pid: a session, a unit, or the slice itself."""
        path = self._cgroup_below_root(pid)
        uid = uid_in_path(path) if path is not None else None
        user = self.users.get(uid) if uid is not None else None
        return user if user is not None and not user.finalized else None

    def session_by_leader(self, pid: int) -> Session | None:
        session = self._by_leader.get(pid)
        return session if session is not None and not session.finalized else None

    def get_user(self, uid: int) -> User:
        user = self.users.get(uid)
        if user is None or user.finalized:
            raise NoSuchUser(f"User ID {uid} is not logged in or lingering.")
        return user

    # -- actions ------------------------------------------------------------------------

    def terminate_session(self, session: Session) -> None:
        session.stop(StopCause.TERMINATE, force=True)

    def reference_closed(self, session: Session) -> None:
        """The PAM process that holds the session's D-Bus FIFO died or exited (logind's
        session_dispatch_fifo): the same unforced stop as a logout."""
        session.stop(StopCause.REFERENCE_CLOSED)

    def terminate_user(self, user: User) -> None:
        user.stop(force=True)

    def kill_user(self, user: User, signo: int) -> int:
        return self.ports.cgroups.signal_all(user.slice, (signo,))

    def linger_policy(self, uid: int) -> PolicyDecision:
        """LingerSelfAllow= for this user (root bypasses it at the edge, as logind's polkit)."""
        account = self.ports.userdb.by_uid(uid)
        if account is None:
            raise NoSuchUser(f"No user with uid {uid} known to the user database.")
        return may_linger_self(self.config, account.name, self.ports.userdb.group_names(account))

    def set_linger(self, uid: int, enable: bool) -> Account:
        """Linger on: flag file, then start the user now. Off: remove it; the user may be collected."""
        account = self.ports.userdb.by_uid(uid)
        if account is None:
            raise NoSuchUser(f"No user with uid {uid} known to the user database.")
        self.ports.userfiles.set_linger(account.name, enable)
        crashpoint("linger.set")
        if enable:
            self._get_or_add_user(account).start()
        elif (user := self.users.get(uid)) is not None and not user.finalized:
            user.gc()
        return account

    # -- callbacks from sessions and users ----------------------------------------------

    def _add(self, session: Session) -> None:
        session.on_removed = self._session_removed
        self.sessions[session.id] = session
        if session.leader_pid:
            self._by_leader[session.leader_pid] = session
        session.user.add_session(session)

    def _forget(self, session: Session) -> None:
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        if self._by_leader.get(session.leader_pid) is session:
            del self._by_leader[session.leader_pid]
        session.user.sessions.pop(session.id, None)

    def _keep_tree(self, uid: int, pids: Sequence[int], name: str) -> None:
        self.units.adopt(self.users[uid], pids, name)

    def _session_removed(self, session: Session) -> None:
        self._forget(session)
        session.user.remove_session(session)
        self._tell(lambda listener: listener.session_removed(session))

    def _user_removed(self, user: User) -> None:
        if self.users.get(user.uid) is user:
            del self.users[user.uid]
        self._tell(lambda listener: listener.user_removed(user))

    # -- restart ------------------------------------------------------------------------

    def restore(self) -> None:
        """Reload saved users and sessions, re-check them against cgroups and processes."""
        self.leftovers.restore()
        self.kills.restore()
        for record in self.ports.store.load_all("users"):
            self._restore_user(record)
        for record in self.ports.store.load_all("sessions"):
            self._restore_session(record)
        self._adopt_hook_records()  # before the orphans: a hook-made scope is no orphan
        self._adopt_orphan_scopes()
        self.units.restore()
        for user in list(self.users.values()):
            user.resume()
        for session in list(self.sessions.values()):
            session.resume()
        for user in list(self.users.values()):
            user.gc()

    def _restore_user(self, record: dict[str, Any]) -> None:
        try:
            uid = int(record["uid"])
            account = self.ports.userdb.by_uid(uid)
            if account is None:
                log.warning("Saved user %s no longer exists, dropping it.", uid)
                self.ports.store.remove("users", str(uid))
                return
            self._get_or_add_user(account).load_record(record)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("Ignoring unreadable saved user %r: %s", record.get("uid"), e)

    def _restore_session(self, record: dict[str, Any]) -> None:
        try:
            session_id = str(record["id"])
            uid = int(record["uid"])
            account = self.ports.userdb.by_uid(uid)
            if account is None:
                raise ValueError(f"uid {uid} no longer exists")
            user = self._get_or_add_user(account)
            if not user.started:
                user.started = True
            session = Session.from_record(self.ctx, user, record)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("Ignoring unreadable saved session %r: %s", record.get("id"), e)
            return
        leader = session.leader
        if not record.get("started"):
            # Crashed between saving the intent and moving the leader: finish or undo.
            in_scope = leader is not None and self.ports.cgroups.exists(session.scope) and (
                leader.pid in self.ports.cgroups.pids(session.scope)
            )
            if not in_scope:
                self.ports.cgroups.remove(session.scope)
                self.ports.store.remove("sessions", session_id)
                if leader is not None:
                    self.ports.processes.release(leader)
                return
        if not self.ports.cgroups.exists(session.scope):
            log.info("Scope of session %s vanished while logoutd was down.", session_id)
            self.ports.store.remove("sessions", session_id)
            if leader is not None:
                self.ports.processes.release(leader)
            return
        self._add(session)

    def _adopt_orphan_scopes(self) -> None:
        """Scopes with no saved session (a crash before the first save): stop them unforced."""
        cgroups = self.ports.cgroups
        if not cgroups.exists(USERS):
            return
        for slice_name in cgroups.children(USERS):
            uid = slice_uid(slice_name)
            if uid is None:
                continue
            account = self.ports.userdb.by_uid(uid)
            if account is not None and account.uid not in self.users:
                # A crash after creating the slice, before saving the user: collect it.
                log.info("Adopting orphan slice %s.", slice_name)
                self._get_or_add_user(account).started = True
            for child in cgroups.children(user_slice(uid)):
                session_id = scope_session(child)
                if session_id is None or session_id in self.sessions:
                    continue
                if account is None:
                    log.warning("Orphan scope %s of an unknown uid, leaving it.", child)
                    continue
                path = session_scope(uid, session_id)
                if not cgroups.is_populated(path) and cgroups.remove(path):
                    # Nothing to stop. (Also: a PAM hook that claimed it a moment ago, while we
                    # were not answering, and has not written its record yet: it makes the
                    # scope again and we adopt its record.)
                    log.info("Removed the empty orphan scope %s.", path)
                    continue
                user = self._get_or_add_user(account)
                user.started = True
                session = Session(ctx=self.ctx, user=user, id=session_id, leader_pid=0,
                                  started=True, timestamp=self.ports.clock.now())
                log.info("Adopting orphan scope of session %s.", session.id)
                self._add(session)

    # -- sessions the PAM hook started while logoutd did not answer ----------------------

    def adopt_hook_records(self) -> list[Session]:
        """Adopt every session the hook recorded (at a create_session, and when the runtime
        sees a new record); each then lives, ends and is killed as any other."""
        adopted = self._adopt_hook_records()
        for session in adopted:
            session.resume()  # watch; a leader already gone stops it at once
        return adopted

    def _adopt_hook_records(self) -> list[Session]:
        adopted = []
        for stored in self.ports.store.load_records(HOOK_KIND):
            try:
                session = self._adopt_hook_record(stored)
            except LogoutdError as e:  # e.g. a full state filesystem: the record stays for later
                log.warning("Cannot adopt the session recorded in %s yet: %s", stored.where,
                            e.message)
                continue
            if session is not None:
                adopted.append(session)
                self._tell(partial(_session_new, session=session))
        return adopted

    def _adopt_hook_record(self, stored: StoredRecord) -> Session | None:
        store = self.ports.store
        try:
            if stored.record is None:
                raise ValueError(stored.error)
            record = parse_hook_record(stored.key, stored.record)
            request = record.request
            type_, class_ = _type_and_class(request)
            account = self.ports.userdb.by_uid(record.uid)
            if account is None:
                raise ValueError(f"uid {record.uid} is unknown to the user database")
        except (ValueError, InvalidArgument) as e:
            log.warning("Removing the PAM hook's record %s: %s; its scope, if any, is left to "
                        "the normal cleanup.", stored.where, e)
            store.remove(HOOK_KIND, stored.key)
            return None
        known = self.sessions.get(record.id)
        if known is not None:
            if known.scope != record.scope:
                log.warning("Removing the PAM hook's record %s: session %s already exists in "
                            "%s.", stored.where, record.id, known.scope)
            store.remove(HOOK_KIND, stored.key)  # else: adopted before a crash, saved since
            return None
        # A pid that leads a session of ours is pinned already: pinning it again would replace
        # that session's pidfd, so it is compared, not pinned.
        tracked = self.session_by_leader(record.leader)
        pinned = tracked.leader if tracked is not None else None
        if tracked is not None and pinned is not None and pinned.start_time == record.leader_start:
            # The daemon made a session for this very leader, in a race with the hook (it
            # answered just after the hook's deadline). One scope per login: whichever move
            # came last holds the login (its PAM process forks nothing while the hook runs).
            if self._cgroup_below_root(record.leader) != f"/{record.scope}":
                log.warning("Removing the PAM hook's record %s: leader %d is in session %s.",
                            stored.where, record.leader, tracked.id)
                self.ports.cgroups.remove(record.scope)
                store.remove(HOOK_KIND, stored.key)
                return None
            log.warning("Session %s lost its leader %d to the PAM hook's scope; ending it and "
                        "adopting %s.", tracked.id, record.leader, stored.where)
            tracked.stop(StopCause.SCOPE_EMPTY)  # empty: finalized at once, its pin released
            if not tracked.finalized:
                return None  # a process slipped in: try again at the next event
            tracked = pinned = None
        user = self._get_or_add_user(account)
        user.start()
        leader = None if pinned is not None else self.ports.processes.repin(
            record.leader, record.leader_start)
        session = Session(
            ctx=self.ctx, user=user, id=record.id, leader_pid=record.leader, leader=leader,
            service=request.service, tty=request.tty.removeprefix("/dev/"),
            remote_host=request.remote_host, remote_user=request.remote_user, type=type_,
            class_=class_, timestamp=record.timestamp,
        )
        self._add(session)
        if tracked is not None:  # the pid was reused by another session's leader: still theirs
            self._by_leader[record.leader] = tracked
        try:
            session.adopt()
        except BaseException:
            self._forget(session)
            if leader is not None:
                self.ports.processes.release(leader)
            user.gc()
            raise
        store.remove(HOOK_KIND, stored.key)
        return session

    def all_sessions(self) -> Iterable[Session]:
        return sorted(self.sessions.values(), key=lambda s: s.id)


def _session_new(listener: Listener, session: Session) -> None:
    listener.session_new(session)


def _type_and_class(request: SessionRequest) -> tuple[str, str]:
    """logind's defaults: x11 with a display, tty with a tty, else unspecified (class background)."""
    type_ = request.type or ("x11" if request.display else "tty" if request.tty else "unspecified")
    if type_ not in SESSION_TYPES:
        raise InvalidArgument(f"Invalid session type '{type_}'")
    class_ = request.class_ or ("background" if type_ == "unspecified" else "user")
    if class_ not in SESSION_CLASSES:
        raise InvalidArgument(f"Invalid session class '{class_}'")
    return type_, class_
