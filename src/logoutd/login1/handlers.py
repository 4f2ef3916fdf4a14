"""login1's methods: each resolves the object, learns the caller from the bus, converts, calls one
Service method and replies. Nothing here reaches the core: the Service's rules and messages are
the socket's too.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageFlag, Variant

from logoutd.api.service import Caller, Service
from logoutd.errors import AccessDenied, LogoutdError, NoSuchSession, NoSuchUser, SessionBusy
from logoutd.login1 import objects, polkit
from logoutd.login1.connection import BusConnection
from logoutd.login1.fifo import ReferenceFifos
from logoutd.login1.labels import ROOT, SESSION_PREFIX, USER_PREFIX, session_path, unescape, user_path
from logoutd.login1.wire import (
    INTROSPECTABLE,
    PARENTS,
    PEER,
    PROPERTIES,
    UINT32_MAX,
    BusError,
    Target,
    check_interface,
    signature_of,
    uid_param,
)

log = logging.getLogger("logoutd")

Handler = Callable[[Message, Any], Awaitable[Message | None]]


class Handlers:
    """Every method of every object under /org/freedesktop/login1, over one Service."""

    def __init__(self, service: Service, conn: BusConnection,
                 fifos: Callable[[], ReferenceFifos | None]) -> None:
        self.service = service
        self.conn = conn
        self._fifos = fifos
        self._table: dict[tuple[str, str], Handler] = {
            (objects.MANAGER_IFACE, "GetSession"): self._get_session,
            (objects.MANAGER_IFACE, "GetSessionByPID"): self._get_session_by_pid,
            (objects.MANAGER_IFACE, "GetUser"): self._get_user,
            (objects.MANAGER_IFACE, "GetUserByPID"): self._get_user_by_pid,
            (objects.MANAGER_IFACE, "ListSessions"): self._list_sessions,
            (objects.MANAGER_IFACE, "ListUsers"): self._list_users,
            (objects.MANAGER_IFACE, "ListSeats"): self._list_seats,
            (objects.MANAGER_IFACE, "CreateSession"): self._create_session,
            (objects.MANAGER_IFACE, "CreateSessionWithPIDFD"): self._create_session_pidfd,
            (objects.MANAGER_IFACE, "ReleaseSession"): self._release_session,
            (objects.MANAGER_IFACE, "TerminateSession"): self._terminate_session,
            (objects.MANAGER_IFACE, "TerminateUser"): self._terminate_user,
            (objects.MANAGER_IFACE, "KillSession"): self._kill_session,
            (objects.MANAGER_IFACE, "KillUser"): self._kill_user,
            (objects.MANAGER_IFACE, "SetUserLinger"): self._set_user_linger,
            (objects.SESSION_IFACE, "Terminate"): self._session_terminate,
            (objects.SESSION_IFACE, "Kill"): self._session_kill,
            (objects.USER_IFACE, "Terminate"): self._user_terminate,
            (objects.USER_IFACE, "Kill"): self._user_kill,
            (PROPERTIES, "Get"): self._properties_get,
            (PROPERTIES, "GetAll"): self._properties_get_all,
            (PROPERTIES, "Set"): self._properties_set,
            (INTROSPECTABLE, "Introspect"): self._introspect,
            (PEER, "Ping"): self._ping,
            (PEER, "GetMachineId"): self._machine_id,
        }

    async def handle(self, msg: Message) -> Message | None:
        """The reply to one method call (None: already sent, or none is due); raises the error."""
        target = await self._resolve(msg)
        member = msg.member or ""
        interface = msg.interface or self._interface_of(target, member)
        handler = self._table.get((interface, member))
        if handler is None or (interface.startswith("org.freedesktop.login1.")
                               and (target is None or target.spec.name != interface)):
            raise BusError("org.freedesktop.DBus.Error.UnknownMethod",
                           f"Unknown method {member} or interface {interface}.")
        if target is None and interface not in (INTROSPECTABLE, PEER):
            raise BusError("org.freedesktop.DBus.Error.UnknownObject",
                           f"Unknown object '{msg.path}'.")
        expected = signature_of(interface, member, target)
        if expected is not None and msg.signature != expected:
            raise BusError("org.freedesktop.DBus.Error.InvalidArgs",
                           f"Invalid arguments '{msg.signature}' to call "
                           f"{interface}.{member}(), expecting '{expected}'.")
        return await handler(msg, target)

    def _interface_of(self, target: Target | None, member: str) -> str:
        """A call without an interface: the object's own, else the standard one with it."""
        if target is not None and target.spec.method(member) is not None:
            return target.spec.name
        for interface, name in self._table:
            if name == member and not interface.startswith("org.freedesktop.login1."):
                return interface
        return ""

    async def _resolve(self, msg: Message) -> Target | None:
        """The path's object; None for the parents of /org/freedesktop/login1 and the folders."""
        path = msg.path or ""
        if path == ROOT:
            state = objects.ManagerState(self.service.config, self.service.session_count())
            return Target(objects.MANAGER, state)
        if path.startswith(SESSION_PREFIX):
            label = path[len(SESSION_PREFIX):]
            try:
                if label in ("auto", "self"):
                    session = self.service.session(await self._caller(msg), label)
                else:  # by id only: an escaped "self" is no session
                    session = self.service.session(None, unescape(label) or "")
            except NoSuchSession:
                raise BusError("org.freedesktop.DBus.Error.UnknownObject",
                               f"Unknown object '{path}'.") from None
            return Target(objects.SESSION, session, session_id=session.id)
        if path.startswith(USER_PREFIX):
            label = path[len(USER_PREFIX):]
            uid = unescape(label)
            try:
                if label == "self":
                    user = self.service.user(await self._caller(msg), None)
                elif uid and uid.isdigit():
                    user = self.service.user(None, int(uid))
                else:
                    raise NoSuchUser(path)
            except NoSuchUser:
                raise BusError("org.freedesktop.DBus.Error.UnknownObject",
                               f"Unknown object '{path}'.") from None
            view = objects.UserObject(user, tuple(self.service.user_sessions(user.uid)))
            return Target(objects.USER, view, uid=user.uid)
        if path.rstrip("/") in (ROOT + "/session", ROOT + "/user") or path in PARENTS:
            return None
        raise BusError("org.freedesktop.DBus.Error.UnknownObject", f"Unknown object '{path}'.")

    # -- who is calling -------------------------------------------------------------------------

    async def _caller(self, msg: Message) -> Caller:
        """The sender's uid and pid as the bus daemon saw them at connect (SO_PEERCRED)."""
        try:
            creds = await self.conn.credentials(msg.sender)
        except LogoutdError as e:
            raise BusError("org.freedesktop.DBus.Error.NameHasNoOwner",
                           f"The caller {msg.sender} is gone: {e.message}") from None
        uid = creds.get("UnixUserID")
        pid = creds.get("ProcessID")
        if uid is None or pid is None:
            raise AccessDenied(f"The bus gave no uid and pid for {msg.sender}.")
        groups = creds.get("UnixGroupIDs")
        gid = groups.value[0] if groups is not None and groups.value else 65534
        return Caller(uid=int(uid.value), gid=int(gid), pid=int(pid.value))

    async def _act(self, msg: Message, method: str, params: dict[str, Any]) -> Message:
        """A method that only acts: the Service call, as the caller, and an empty reply."""
        self.service.call(await self._caller(msg), method, params)
        return Message.new_method_return(msg)

    # -- Manager methods ------------------------------------------------------------------------

    async def _get_session(self, msg: Message, target: Target) -> Message:
        session_id = msg.body[0]
        caller = await self._caller(msg) if session_id in ("", "self", "auto") else None
        session = self.service.session(caller, session_id)
        return Message.new_method_return(msg, "o", [session_path(session.id)])

    async def _get_session_by_pid(self, msg: Message, target: Target) -> Message:
        pid = msg.body[0] or (await self._caller(msg)).pid
        session = self.service.session_by_pid(pid)
        if session is None:
            raise BusError("org.freedesktop.login1.NoSessionForPID",
                           f"PID {pid} does not belong to any known session")
        return Message.new_method_return(msg, "o", [session_path(session.id)])

    async def _get_user(self, msg: Message, target: Target) -> Message:
        uid = msg.body[0]
        if uid == UINT32_MAX:
            user = self.service.user(await self._caller(msg), None)
        else:
            user = self.service.user(None, uid)
        return Message.new_method_return(msg, "o", [user_path(user.uid)])

    async def _get_user_by_pid(self, msg: Message, target: Target) -> Message:
        pid = msg.body[0] or (await self._caller(msg)).pid
        user = self.service.user_by_pid(pid)
        if user is None:
            raise BusError("org.freedesktop.login1.NoUserForPID",
                           f"PID {pid} does not belong to any logged in user or lingering user")
        return Message.new_method_return(msg, "o", [user_path(user.uid)])

    async def _list_sessions(self, msg: Message, target: Target) -> Message:
        rows = [[s.id, s.uid, s.user, "", session_path(s.id)] for s in self.service.sessions()]
        return Message.new_method_return(msg, "a(susso)", [rows])

    async def _list_users(self, msg: Message, target: Target) -> Message:
        rows = [[u.uid, u.name, user_path(u.uid)] for u in self.service.users()]
        return Message.new_method_return(msg, "a(uso)", [rows])

    async def _list_seats(self, msg: Message, target: Target) -> Message:
        return Message.new_method_return(msg, "a(so)", [[]])

    async def _create_session(self, msg: Message, target: Target) -> Message | None:
        (uid, pid, service, type_, class_, _desktop, _seat, _vtnr, tty, display, _remote,
         remote_user, remote_host, properties) = msg.body
        return await self._create(msg, uid, pid, service, type_, class_, tty, display,
                                  remote_user, remote_host, properties)

    async def _create_session_pidfd(self, msg: Message, target: Target) -> Message | None:
        """logind 255's CreateSession with the leader as a pidfd (pam_systemd >= 255 tries it
        first); flags must be 0, as there."""
        (uid, fd_index, service, type_, class_, _desktop, _seat, _vtnr, tty, display, _remote,
         remote_user, remote_host, flags, properties) = msg.body
        if flags != 0:
            raise BusError("org.freedesktop.DBus.Error.InvalidArgs",
                           f"Flags must be zero (got {flags:#x}).")
        if not 0 <= fd_index < len(msg.unix_fds):
            raise BusError("org.freedesktop.DBus.Error.InvalidArgs",
                           f"No file descriptor at index {fd_index} in the message.")
        pid = pidfd_pid(msg.unix_fds[fd_index])
        return await self._create(msg, uid, pid, service, type_, class_, tty, display,
                                  remote_user, remote_host, properties)

    async def _create(self, msg: Message, uid: int, pid: int, service: str, type_: str,
                      class_: str, tty: str, display: str, remote_user: str, remote_host: str,
                      properties: list[Any]) -> Message | None:
        """Both CreateSession methods, once the leader's pid is known (0: the caller)."""
        caller = await self._caller(msg)  # a sender that is gone creates nothing
        leader = pid or caller.pid
        if leader == os.getpid():  # as logind: never put the login manager into a session
            raise BusError("org.freedesktop.DBus.Error.InvalidArgs", "Invalid leader PID")
        if properties:
            log.debug("CreateSession from pid %d: scope properties %s are not applied.",
                      caller.pid, [name for name, _value in properties])
        created = self.service.call(caller, "create_session", {
            "uid": uid, "leader": leader, "service": service, "type": type_,
            "class": class_, "tty": tty, "display": display, "remote_host": remote_host,
            "remote_user": remote_user,
        })
        assert isinstance(created, dict)  # create_session answers at once
        if created["existing"]:  # logind answers a second CreateSession for a leader so
            raise SessionBusy("Already running in a session or user slice")
        try:
            session = self.service.session(caller, created["session"]["id"])
        except NoSuchSession:  # the leader exited between the move and now
            raise NoSuchSession("The session ended before it could be returned.") from None
        fifos = self._fifos()
        assert fifos is not None
        try:
            wfd = fifos.create(session.id)
        except OSError as e:  # the session stays; its leader's exit still ends it
            raise LogoutdError(f"Cannot create the reference FIFO {fifos.path(session.id)}: "
                               f"{e.strerror or e}") from None
        reply = Message.new_method_return(
            msg, "soshusub",
            [session.id, session_path(session.id), created["runtime_path"], 0, session.uid,
             "", 0, False],
            [wfd],
        )
        # dbus-fast sends the fd by number later: close our copy only once it has gone out.
        sent = None if msg.flags & MessageFlag.NO_REPLY_EXPECTED else self.conn.send(reply)
        if sent is None:
            os.close(wfd)
        else:
            sent.add_done_callback(lambda _f: os.close(wfd))
        return None

    async def _release_session(self, msg: Message, target: Target) -> Message:
        return await self._act(msg, "release_session", {"id": msg.body[0]})

    async def _terminate_session(self, msg: Message, target: Target) -> Message:
        return await self._act(msg, "terminate_session", {"id": msg.body[0]})

    async def _terminate_user(self, msg: Message, target: Target) -> Message:
        return await self._act(msg, "terminate_user", uid_param(msg.body[0]))

    async def _kill_session(self, msg: Message, target: Target) -> Message:
        session_id, who, signo = msg.body
        return await self._act(msg, "kill_session",
                               {"id": session_id, "who": who or "all", "signal": signo})

    async def _kill_user(self, msg: Message, target: Target) -> Message:
        uid, signo = msg.body
        return await self._act(msg, "kill_user", {**uid_param(uid), "signal": signo})

    async def _set_user_linger(self, msg: Message, target: Target) -> Message:
        """Root, then polkit when it is on the bus (as logind), else logoutd's own policy."""
        uid, enable, interactive = msg.body
        caller = await self._caller(msg)
        params: dict[str, Any] = {**uid_param(uid), "enable": enable}
        if caller.is_root:
            self.service.call(caller, "set_linger", params)
            return Message.new_method_return(msg)
        target_uid = self.service.uid_for(caller, params.get("uid"))
        action = ("org.freedesktop.login1.set-self-linger" if target_uid == caller.uid
                  else "org.freedesktop.login1.set-user-linger")
        bus = self.conn.bus
        if bus is None:
            raise LogoutdError("Lost the system bus while asking polkit.")
        interactive = interactive or bool(msg.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)
        verdict = await polkit.check(bus, msg.sender, action, interactive)
        if verdict is None:
            self.service.call(caller, "set_linger", params)
        else:
            self.service.set_linger_as(caller, target_uid, enable, authority=f"polkit {action}")
        return Message.new_method_return(msg)

    # -- Session and User methods ---------------------------------------------------------------

    async def _session_terminate(self, msg: Message, target: Target) -> Message:
        return await self._act(msg, "terminate_session", {"id": target.session_id})

    async def _session_kill(self, msg: Message, target: Target) -> Message:
        who, signo = msg.body
        return await self._act(msg, "kill_session",
                               {"id": target.session_id, "who": who or "all", "signal": signo})

    async def _user_terminate(self, msg: Message, target: Target) -> Message:
        return await self._act(msg, "terminate_user", {"uid": target.uid})

    async def _user_kill(self, msg: Message, target: Target) -> Message:
        return await self._act(msg, "kill_user", {"uid": target.uid, "signal": msg.body[0]})

    # -- standard interfaces --------------------------------------------------------------------

    async def _properties_get(self, msg: Message, target: Target) -> Message:
        interface, name = msg.body
        check_interface(target, interface)
        prop = target.spec.prop(name)
        if prop is None:
            raise BusError("org.freedesktop.DBus.Error.UnknownProperty",
                           f"Unknown property {name}.")
        return Message.new_method_return(msg, "v", [Variant(prop.type, prop.get(target.view))])

    async def _properties_get_all(self, msg: Message, target: Target) -> Message:
        """sd-bus' bus_map_all_properties asks with interface "": every property of the object."""
        interface = msg.body[0]
        if interface in (PEER, INTROSPECTABLE, PROPERTIES):
            return Message.new_method_return(msg, "a{sv}", [{}])
        check_interface(target, interface)
        values = {p.name: Variant(p.type, p.get(target.view)) for p in target.spec.properties}
        return Message.new_method_return(msg, "a{sv}", [values])

    async def _properties_set(self, msg: Message, target: Target) -> Message:
        raise BusError("org.freedesktop.DBus.Error.PropertyReadOnly",
                       f"Property {msg.body[1]} is read-only.")

    async def _introspect(self, msg: Message, target: Target | None) -> Message:
        path = (msg.path or "").rstrip("/") or "/"
        if target is not None:
            children = ["session", "user"] if target.spec is objects.MANAGER else []
            xml = objects.introspect(target.spec, children)
        elif path == ROOT + "/session":
            xml = objects.introspect(None, [session_path(s.id)[len(SESSION_PREFIX):]
                                            for s in self.service.sessions()])
        elif path == ROOT + "/user":
            xml = objects.introspect(None, [user_path(u.uid)[len(USER_PREFIX):]
                                            for u in self.service.users()])
        else:
            xml = objects.introspect(None, PARENTS.get(path, []))
        return Message.new_method_return(msg, "s", [xml])

    async def _ping(self, msg: Message, target: Target | None) -> Message:
        return Message.new_method_return(msg)

    async def _machine_id(self, msg: Message, target: Target | None) -> Message:
        try:
            machine_id = Path("/etc/machine-id").read_text().strip()
        except OSError as e:
            raise LogoutdError(f"Cannot read /etc/machine-id: {e.strerror}") from None
        return Message.new_method_return(msg, "s", [machine_id])


def pidfd_pid(fd: int) -> int:
    """The pid of a pidfd's process (its fdinfo "Pid:"); a clear error when the fd is not a
    pidfd or its process has exited."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError as e:
        raise BusError("org.freedesktop.DBus.Error.InvalidArgs",
                       f"Cannot read the leader's pidfd: {e.strerror or e}") from None
    pid_field = fields.get("Pid")
    if pid_field is None:
        raise BusError("org.freedesktop.DBus.Error.InvalidArgs",
                       "The leader's file descriptor is not a pidfd.")
    pid = int(pid_field)
    try:  # also proves that pid is still that process, not a reuse of its number
        signal.pidfd_send_signal(fd, 0)
    except ProcessLookupError:
        pid = -1
    except OSError as e:
        raise BusError("org.freedesktop.DBus.Error.InvalidArgs",
                       f"Cannot check the leader's pidfd: {e.strerror or e}") from None
    if pid <= 0:  # fdinfo says -1 (exited) or 0 (another pid namespace)
        raise BusError("org.freedesktop.DBus.Error.InvalidArgs",
                       "The leader's pidfd refers to a process that has exited.")
    return pid
