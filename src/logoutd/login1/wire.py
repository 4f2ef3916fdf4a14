"""What the login1 adapter's handlers share: logind's error names, the addressed object, and
the small rules of the wire (signatures, interfaces, paths)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageType
from dbus_fast.aio import MessageBus

from logoutd.errors import LogoutdError
from logoutd.login1 import objects
from logoutd.login1.labels import ROOT

DBUS = "org.freedesktop.DBus"
PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PEER = "org.freedesktop.DBus.Peer"
UINT32_MAX = 2**32 - 1

# The core's error codes as logind names them on the bus.
ERROR_NAMES = {
    "no_such_session": "org.freedesktop.login1.NoSuchSession",
    "no_such_user": "org.freedesktop.login1.NoSuchUser",
    "session_busy": "org.freedesktop.login1.SessionBusy",
    "access_denied": "org.freedesktop.DBus.Error.AccessDenied",
    "invalid_argument": "org.freedesktop.DBus.Error.InvalidArgs",
    "limits_exceeded": "org.freedesktop.DBus.Error.LimitsExceeded",
    "no_such_process": "org.freedesktop.systemd1.NoSuchProcess",
    "not_available": "org.freedesktop.DBus.Error.NotSupported",
    "no_such_unit": "org.freedesktop.systemd1.NoSuchUnit",
    "unit_exists": "org.freedesktop.systemd1.UnitExists",
}
PARENTS = {"/": ["org"], "/org": ["freedesktop"], "/org/freedesktop": ["login1"]}


class BusError(LogoutdError):
    """An error that already has its D-Bus name (UnknownObject, UnknownProperty, …)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def error_name(error: LogoutdError) -> str:
    if isinstance(error, BusError):
        return error.name
    return ERROR_NAMES.get(error.code, "org.freedesktop.DBus.Error.Failed")


class Target:
    """The object a call addresses: the manager, a session or a user, resolved from the path;
    `view` is what its properties read."""

    def __init__(self, spec: objects.InterfaceSpec, view: Any, *, session_id: str = "",
                 uid: int = -1) -> None:
        self.spec = spec
        self.view = view
        self.session_id = session_id
        self.uid = uid


async def dbus_call(bus: MessageBus, member: str, signature: str, body: list[Any]) -> list[Any]:
    """A call to the bus daemon itself; its error becomes a LogoutdError."""
    reply = await bus.call(Message(destination=DBUS, path="/org/freedesktop/DBus", interface=DBUS,
                                   member=member, signature=signature, body=body))
    if reply.message_type is MessageType.ERROR:
        raise LogoutdError(f"{reply.error_name}: {text_of(reply)}")
    return list(reply.body)


def ours(path: str | None) -> bool:
    return path is not None and (path == ROOT or path.startswith(ROOT + "/") or path in PARENTS)


def signature_of(interface: str, member: str, target: Target | None) -> str | None:
    standard = {(PROPERTIES, "Get"): "ss", (PROPERTIES, "GetAll"): "s",
                (PROPERTIES, "Set"): "ssv", (INTROSPECTABLE, "Introspect"): "",
                (PEER, "Ping"): "", (PEER, "GetMachineId"): ""}
    if (interface, member) in standard:
        return standard[(interface, member)]
    method = target.spec.method(member) if target is not None else None
    return method.in_signature if method is not None else None


def check_interface(target: Target, interface: str) -> None:
    if interface not in ("", target.spec.name):
        raise BusError("org.freedesktop.DBus.Error.UnknownInterface",
                       f"Unknown interface {interface}.")


def uid_param(uid: int) -> dict[str, Any]:
    """UINT32_MAX (-1) means the caller's own user, as in logind."""
    return {} if uid == UINT32_MAX else {"uid": uid}


def text_of(reply: Message) -> str:
    return str(reply.body[0]) if reply.body else ""


def describe_process(pid: int) -> str:
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        comm = "?"
    return f"pid {pid}, {comm}"

