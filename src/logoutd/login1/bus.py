"""`org.freedesktop.login1` on the system bus, over the same Service as the socket API.

dbus-fast's high-level ServiceInterface cannot be used here: its handlers never see the message
(no sender, so no caller for `CreateSession(pid=0)` or for authorization) and its Properties
handler refuses `GetAll("")`, which every `loginctl show-*` sends. So one low-level message
handler serves every path under /org/freedesktop/login1; each call runs as its own task and
never waits on anything but the bus (the caller's credentials, polkit): a stuck daemon would
hang every login for pam_systemd's 2-minute timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from dbus_fast import BusType, Message, MessageFlag, MessageType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusError

from logoutd.api.service import Caller, Service, session_view, user_view
from logoutd.core.sessions import Session
from logoutd.core.users import User
from logoutd.errors import AccessDenied, LogoutdError, NoSuchSession, NoSuchUser, SessionBusy
from logoutd.login1 import objects, polkit
from logoutd.login1.fifo import ReferenceFifos
from logoutd.login1.labels import ROOT, SESSION_PREFIX, USER_PREFIX, session_path, unescape, user_path
from logoutd.login1.wire import (
    DBUS,
    INTROSPECTABLE,
    PARENTS,
    PEER,
    PROPERTIES,
    UINT32_MAX,
    BusError,
    Target,
    check_interface,
    dbus_call,
    describe_process,
    error_name,
    ours,
    signature_of,
    text_of,
    uid_param,
)

log = logging.getLogger("logoutd")

NAME = "org.freedesktop.login1"
DO_NOT_QUEUE = 4
DEFAULT_ADDRESS = "unix:path=/run/dbus/system_bus_socket"
# pam_systemd's logind_running() gate; logind creates it at start "unconditionally".
SEATS_DIR = Path("/run/systemd/seats")
RECONNECT_FIRST, RECONNECT_MAX = 0.5, 10.0  # seconds between tries after losing the bus

Handler = Callable[[Message, "Target"], Awaitable[Message | None]]


class Login1:
    """One bus connection, the name, the reference FIFOs and the signals."""

    def __init__(self, service: Service, fifo_dir: Path) -> None:
        self.service = service
        self.manager = service.manager
        self.fifo_dir = fifo_dir
        self.bus: MessageBus | None = None
        self.fifos: ReferenceFifos | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self._watcher: asyncio.Task[None] | None = None
        self._handlers: dict[tuple[str, str], Handler] = {
            (objects.MANAGER_IFACE, "GetSession"): self._get_session,
            (objects.MANAGER_IFACE, "GetSessionByPID"): self._get_session_by_pid,
            (objects.MANAGER_IFACE, "GetUser"): self._get_user,
            (objects.MANAGER_IFACE, "GetUserByPID"): self._get_user_by_pid,
            (objects.MANAGER_IFACE, "ListSessions"): self._list_sessions,
            (objects.MANAGER_IFACE, "ListUsers"): self._list_users,
            (objects.MANAGER_IFACE, "ListSeats"): self._list_seats,
            (objects.MANAGER_IFACE, "CreateSession"): self._create_session,
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

    # -- start and stop -------------------------------------------------------------------------

    async def start(self) -> None:
        """Claim the name (or refuse to start, having changed nothing), then reopen the FIFOs."""
        await self._connect()
        self.fifos = ReferenceFifos(self.fifo_dir, asyncio.get_running_loop(), self._fifo_hung_up)
        # No await between the name and this: calls already queued run only afterwards.
        for session_id in self.fifos.reopen(self.manager.sessions):
            log.info("Session %s: its PAM process went away while logoutd was down.", session_id)
            self.manager.reference_closed(self.manager.sessions[session_id])
        self.manager.listeners.append(self)
        if self.address == DEFAULT_ADDRESS:
            _mark_running()
        log.info("Serving %s on the system bus at %s (%d reference FIFOs reopened).", NAME,
                 self.address, len(self.fifos.watched()))

    def describe(self) -> dict[str, Any]:
        """For `logoutctl status`."""
        return {"name": NAME, "address": self.address, "connected": self.bus is not None,
                "reference_fifos": len(self.fifos.watched()) if self.fifos is not None else 0}

    @property
    def address(self) -> str:
        return os.environ.get("DBUS_SYSTEM_BUS_ADDRESS", DEFAULT_ADDRESS)

    async def _connect(self) -> None:
        address = self.address
        try:
            bus = await MessageBus(bus_type=BusType.SYSTEM, negotiate_unix_fd=True).connect()
        except Exception as e:  # OSError, AuthError, and dbus-fast's plain Exceptions
            raise LogoutdError(f"Cannot connect to the system bus at {address}: {e}") from None
        bus.add_message_handler(self._on_message)
        reply = await bus.call(Message(destination=DBUS, path="/org/freedesktop/DBus",
                                       interface=DBUS, member="RequestName", signature="su",
                                       body=[NAME, DO_NOT_QUEUE]))
        if reply.message_type is MessageType.ERROR:
            bus.disconnect()
            raise LogoutdError(f"The system bus at {address} refused {NAME} to logoutd: "
                               f"{reply.error_name}: {text_of(reply)}")
        if reply.body[0] not in (1, 4):  # PRIMARY_OWNER, ALREADY_OWNER
            owner = await _describe_owner(bus, NAME)
            bus.disconnect()
            raise LogoutdError(
                f"{NAME} is already owned on the system bus at {address} by {owner}: refusing "
                "to start. Stop that service (systemd-logind or elogind) or run logoutd "
                "without --dbus.")
        self.bus = bus
        # Not in self._tasks: cancelling a waiter would cancel dbus-fast's shared future.
        self._watcher = asyncio.get_running_loop().create_task(self._watch_connection(bus))

    async def _watch_connection(self, bus: MessageBus) -> None:
        """The bus went away (dbus-daemon restarted): reconnect, and take the name back.

        Sessions are untouched meanwhile; logins through pam_systemd get no session until
        then (pam_systemd fails, its line is optional), those through the hook still do.
        """
        try:
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
        except Exception as e:  # the connection's own error ends the wait too
            log.debug("System bus connection ended: %s", e)
        if self._closing or self.bus is not bus:
            return
        self.bus = None
        delay = RECONNECT_FIRST
        log.warning("Lost the system bus at %s; %s is not served until it is back.",
                    self.address, NAME)
        while not self._closing:
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except LogoutdError as e:
                log.warning("%s (retrying in %gs)", e.message, min(delay * 2, RECONNECT_MAX))
                delay = min(delay * 2, RECONNECT_MAX)
                continue
            log.info("Serving %s again on the system bus at %s.", NAME, self.address)
            return

    async def close(self) -> None:
        self._closing = True
        if self in self.manager.listeners:
            self.manager.listeners.remove(self)
        if self.fifos is not None:
            self.fifos.close()
        for task in list(self._tasks):
            task.cancel()
        bus, self.bus = self.bus, None
        if bus is not None:
            bus.disconnect()
        if self._watcher is not None:
            # It returns once the connection is down; a reconnect loop sleeping is cancelled.
            done, _pending = await asyncio.wait({self._watcher}, timeout=2.0)
            if not done:
                self._watcher.cancel()

    # -- dispatch -------------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> bool:
        """dbus-fast's hook: claim every method call on our paths and answer it from a task."""
        if msg.message_type is not MessageType.METHOD_CALL or not ours(msg.path):
            return False
        task = asyncio.get_running_loop().create_task(self._answer(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _answer(self, msg: Message) -> None:
        try:
            reply = await self._handle(msg)
        except LogoutdError as e:
            reply = Message.new_error(msg, error_name(e), e.message)
        except DBusError as e:
            reply = Message.new_error(msg, e.type, e.text)
        except Exception:
            log.exception("Internal error answering %s.%s from %s", msg.interface, msg.member,
                          msg.sender)
            reply = Message.new_error(msg, "org.freedesktop.DBus.Error.Failed", "Internal error")
        if reply is None or msg.flags & MessageFlag.NO_REPLY_EXPECTED or self.bus is None:
            return
        self.bus.send(reply)

    async def _handle(self, msg: Message) -> Message | None:
        target = await self._resolve(msg)
        member = msg.member or ""
        interface = msg.interface or self._interface_of(target, member)
        handler = self._handlers.get((interface, member))
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
        return await handler(msg, target)  # type: ignore[arg-type]

    def _interface_of(self, target: Target | None, member: str) -> str:
        """A call without an interface: the object's own, else the standard one with it."""
        if target is not None and target.spec.method(member) is not None:
            return target.spec.name
        for interface, name in self._handlers:
            if name == member and not interface.startswith("org.freedesktop.login1."):
                return interface
        return ""

    async def _resolve(self, msg: Message) -> Target | None:
        """The path's object; None for the parents of /org/freedesktop/login1 and the folders."""
        path = msg.path or ""
        if path == ROOT:
            state = objects.ManagerState(self.manager.config, len(self.manager.sessions))
            return Target(objects.MANAGER, state)
        if path.startswith(SESSION_PREFIX):
            label = path[len(SESSION_PREFIX):]
            if label in ("auto", "self"):
                session = self.service.session_of(await self._caller(msg), label)
            else:
                session_id = unescape(label)
                session = self.manager.sessions.get(session_id) if session_id else None
            if session is None:
                raise BusError("org.freedesktop.DBus.Error.UnknownObject",
                               f"Unknown object '{path}'.")
            return Target(objects.SESSION, session_view(session), session=session)
        if path.startswith(USER_PREFIX):
            label = path[len(USER_PREFIX):]
            user: User | None
            if label == "self":
                user = self.service.user_of(await self._caller(msg), None)
            else:
                uid = unescape(label)
                user = self.manager.users.get(int(uid)) if uid and uid.isdigit() else None
            if user is None or user.finalized:
                raise BusError("org.freedesktop.DBus.Error.UnknownObject",
                               f"Unknown object '{path}'.")
            return Target(objects.USER, self._user_view(user), user=user)
        if path.rstrip("/") in (ROOT + "/session", ROOT + "/user") or path in PARENTS:
            return None
        raise BusError("org.freedesktop.DBus.Error.UnknownObject", f"Unknown object '{path}'.")

    def _user_view(self, user: User) -> dict[str, Any]:
        view = user_view(user)
        view["session_views"] = [session_view(s) for s in user.sessions.values()]
        return view

    # -- who is calling -------------------------------------------------------------------------

    async def _caller(self, msg: Message) -> Caller:
        """The sender's uid and pid as the bus daemon saw them at connect (SO_PEERCRED)."""
        try:
            if self.bus is None:
                raise LogoutdError("not connected")
            creds = (await dbus_call(self.bus, "GetConnectionCredentials", "s", [msg.sender]))[0]
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
        if session_id in ("", "self", "auto"):
            session = self.service.session_of(await self._caller(msg), session_id)
            if session is None:
                raise NoSuchSession("Caller does not belong to any known session")
        else:
            session = self.manager.get_session(session_id)
        return Message.new_method_return(msg, "o", [session_path(session.id)])

    async def _get_session_by_pid(self, msg: Message, target: Target) -> Message:
        pid = msg.body[0] or (await self._caller(msg)).pid
        session = self.manager.session_by_pid(pid)
        if session is None:
            raise BusError("org.freedesktop.login1.NoSessionForPID",
                           f"PID {pid} does not belong to any known session")
        return Message.new_method_return(msg, "o", [session_path(session.id)])

    async def _get_user(self, msg: Message, target: Target) -> Message:
        uid = msg.body[0]
        user = (self.service.user_of(await self._caller(msg), None) if uid == UINT32_MAX
                else self.manager.users.get(uid))
        if user is None or user.finalized:
            raise NoSuchUser(f"User ID {uid} is not logged in or lingering.")
        return Message.new_method_return(msg, "o", [user_path(user.uid)])

    async def _get_user_by_pid(self, msg: Message, target: Target) -> Message:
        pid = msg.body[0] or (await self._caller(msg)).pid
        user = self.manager.user_by_pid(pid)
        if user is None:
            raise BusError("org.freedesktop.login1.NoUserForPID",
                           f"PID {pid} does not belong to any logged in user or lingering user")
        return Message.new_method_return(msg, "o", [user_path(user.uid)])

    async def _list_sessions(self, msg: Message, target: Target) -> Message:
        rows = [[s.id, s.user.uid, s.user.name, "", session_path(s.id)]
                for s in self.manager.all_sessions()]
        return Message.new_method_return(msg, "a(susso)", [rows])

    async def _list_users(self, msg: Message, target: Target) -> Message:
        rows = [[u.uid, u.name, user_path(u.uid)]
                for u in sorted(self.manager.users.values(), key=lambda u: u.uid)
                if not u.finalized]
        return Message.new_method_return(msg, "a(uso)", [rows])

    async def _list_seats(self, msg: Message, target: Target) -> Message:
        return Message.new_method_return(msg, "a(so)", [[]])

    async def _create_session(self, msg: Message, target: Target) -> Message | None:
        (uid, pid, service, type_, class_, _desktop, _seat, _vtnr, tty, display, _remote,
         remote_user, remote_host, properties) = msg.body
        caller = await self._caller(msg)  # a sender that is gone creates nothing
        if properties:
            log.debug("CreateSession from pid %d: scope properties %s are not applied.",
                      caller.pid, [name for name, _value in properties])
        created = self.service.call(caller, "create_session", {
            "uid": uid, "leader": pid or caller.pid, "service": service, "type": type_,
            "class": class_, "tty": tty, "display": display, "remote_host": remote_host,
            "remote_user": remote_user,
        })
        assert isinstance(created, dict)  # create_session answers at once
        if created["existing"]:  # logind answers a second CreateSession for a leader so
            raise SessionBusy("Already running in a session or user slice")
        session = self.manager.sessions.get(created["session"]["id"])
        if session is None:  # the leader exited between the move and now
            raise NoSuchSession("The session ended before it could be returned.")
        assert self.fifos is not None and self.bus is not None
        try:
            wfd = self.fifos.create(session.id)
        except OSError as e:  # the session stays; its leader's exit still ends it
            raise LogoutdError(f"Cannot create the reference FIFO {self.fifos.path(session.id)}: "
                               f"{e.strerror or e}") from None
        reply = Message.new_method_return(
            msg, "soshusub",
            [session.id, session_path(session.id), session.user.runtime_path, 0, session.user.uid,
             "", 0, False],
            [wfd],
        )
        # dbus-fast sends the fd by number later: close our copy only once it has gone out.
        if msg.flags & MessageFlag.NO_REPLY_EXPECTED:
            os.close(wfd)
        else:
            self.bus.send(reply).add_done_callback(lambda _f: os.close(wfd))
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
        assert self.bus is not None
        interactive = interactive or bool(msg.flags & MessageFlag.ALLOW_INTERACTIVE_AUTHORIZATION)
        verdict = await polkit.check(self.bus, msg.sender, action, interactive)
        if verdict is None:
            self.service.call(caller, "set_linger", params)
        else:
            self.service.set_linger_as(caller, target_uid, enable, authority=f"polkit {action}")
        return Message.new_method_return(msg)

    # -- Session and User methods ---------------------------------------------------------------

    async def _session_terminate(self, msg: Message, target: Target) -> Message:
        assert target.session is not None
        return await self._act(msg, "terminate_session", {"id": target.session.id})

    async def _session_kill(self, msg: Message, target: Target) -> Message:
        assert target.session is not None
        who, signo = msg.body
        return await self._act(msg, "kill_session",
                               {"id": target.session.id, "who": who or "all", "signal": signo})

    async def _user_terminate(self, msg: Message, target: Target) -> Message:
        assert target.user is not None
        return await self._act(msg, "terminate_user", {"uid": target.user.uid})

    async def _user_kill(self, msg: Message, target: Target) -> Message:
        assert target.user is not None
        return await self._act(msg, "kill_user", {"uid": target.user.uid, "signal": msg.body[0]})

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
            xml = objects.introspect(None, [session_path(s)[len(SESSION_PREFIX):]
                                            for s in sorted(self.manager.sessions)])
        elif path == ROOT + "/user":
            xml = objects.introspect(None, [user_path(u)[len(USER_PREFIX):]
                                            for u in sorted(self.manager.users)])
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

    # -- the core's events ----------------------------------------------------------------------

    def session_new(self, session: Session) -> None:
        self._signal("SessionNew", "so", [session.id, session_path(session.id)])

    def session_removed(self, session: Session) -> None:
        if self.fifos is not None:
            self.fifos.drop(session.id)
        self._signal("SessionRemoved", "so", [session.id, session_path(session.id)])

    def user_new(self, user: User) -> None:
        self._signal("UserNew", "uo", [user.uid, user_path(user.uid)])

    def user_removed(self, user: User) -> None:
        self._signal("UserRemoved", "uo", [user.uid, user_path(user.uid)])

    def _signal(self, member: str, signature: str, body: list[Any]) -> None:
        if self.bus is not None and self.bus.connected:
            self.bus.send(Message.new_signal(ROOT, objects.MANAGER_IFACE, member, signature, body))

    def _fifo_hung_up(self, session_id: str) -> None:
        session = self.manager.sessions.get(session_id)
        if session is not None:
            log.info("Session %s: its PAM process closed the reference FIFO.", session_id)
            self.manager.reference_closed(session)


# -- helpers -------------------------------------------------------------------------------------

async def _describe_owner(bus: MessageBus, name: str) -> str:
    try:
        owner = await dbus_call(bus, "GetNameOwner", "s", [name])
        pid = await dbus_call(bus, "GetConnectionUnixProcessID", "s", [owner[0]])
    except LogoutdError as e:
        return f"another connection ({e.message})"
    return f"{owner[0]} ({describe_process(int(pid[0]))})"


def _mark_running() -> None:
    """On the machine's own system bus, tell pam_systemd a login manager runs, as logind does.

    Not /run/systemd/system: that says systemd is PID 1, and systemctl and package scripts
    would believe it (docs/dbus.md).
    """
    if SEATS_DIR.is_dir():
        return
    try:
        SEATS_DIR.mkdir(mode=0o755, parents=True)
    except OSError as e:
        log.warning("Cannot create %s (%s): pam_systemd will not call logoutd.", SEATS_DIR,
                    e.strerror)
    else:
        log.info("Created %s: pam_systemd now asks org.freedesktop.login1 for sessions.",
                 SEATS_DIR)


