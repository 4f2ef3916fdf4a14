"""The three object types logind exports, as data: methods, signals, properties with exact types.

Everything here is pure: values are computed from the Service's typed views (the ones the socket
API answers with) and the configuration; the handlers wrap them into D-Bus variants. The
introspection XML is generated from the same tables, so what is announced is what is served.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Generic, TypeVar
from xml.sax.saxutils import quoteattr

from logoutd.api.views import SessionView, UserView
from logoutd.config.model import Config, KillMode
from logoutd.core.sessions import is_remote_host
from logoutd.login1.labels import session_path, user_path

MANAGER_IFACE = "org.freedesktop.login1.Manager"
SESSION_IFACE = "org.freedesktop.login1.Session"
USER_IFACE = "org.freedesktop.login1.User"
UINT64_MAX = 2**64 - 1
NO_SEAT = ("", "/")

V = TypeVar("V")


@dataclass(frozen=True)
class Arg:
    name: str
    type: str


@dataclass(frozen=True)
class MethodSpec:
    name: str
    args_in: tuple[Arg, ...] = ()
    args_out: tuple[Arg, ...] = ()

    @property
    def in_signature(self) -> str:
        return "".join(a.type for a in self.args_in)

    @property
    def out_signature(self) -> str:
        return "".join(a.type for a in self.args_out)


@dataclass(frozen=True)
class Prop(Generic[V]):
    """A property read from the object's view V (type-checked against V's fields)."""

    name: str
    type: str
    get: Callable[[V], Any]


@dataclass(frozen=True)
class InterfaceSpec:
    name: str
    methods: tuple[MethodSpec, ...]
    signals: tuple[MethodSpec, ...] = ()
    properties: tuple[Prop[Any], ...] = field(default=())

    def method(self, name: str) -> MethodSpec | None:
        return next((m for m in self.methods if m.name == name), None)

    def prop(self, name: str) -> Prop[Any] | None:
        return next((p for p in self.properties if p.name == name), None)


def _args(spec: str) -> tuple[Arg, ...]:
    """"name:type name:type" -> Args (types never contain spaces or colons)."""
    return tuple(Arg(*item.split(":", 1)) for item in spec.split())


def _m(name: str, args_in: str = "", args_out: str = "") -> MethodSpec:
    return MethodSpec(name, _args(args_in), _args(args_out))


# -- values ------------------------------------------------------------------------------------

def usec(seconds: float) -> int:
    """A time span in µs; infinity is UINT64_MAX, as sd-bus sends USEC_INFINITY."""
    if math.isinf(seconds):
        return UINT64_MAX
    return max(0, round(seconds * 1_000_000))


def realtime_usec(timestamp: float | None) -> int:
    return usec(timestamp) if timestamp else 0


def monotonic_usec(timestamp: float | None) -> int:
    """The CLOCK_MONOTONIC time of a wall-clock timestamp (as logind's dual_timestamp)."""
    if not timestamp:
        return 0
    return usec(max(0.0, timestamp - (time.time() - time.monotonic())))


def audit_id(session_id: str) -> int:
    """Ids taken from the kernel's audit session id are that id; counter ids (cN) have none."""
    return int(session_id) if session_id.isdigit() and int(session_id) < 2**32 else 0


def elect_display(sessions: Sequence[SessionView]) -> tuple[str, str]:
    """User.Display: the user's oldest live session of class user (logind prefers graphical
    ones; logoutd has none), else no display."""
    candidates = [s for s in sessions if s.class_ == "user" and s.state != "closing"]
    if not candidates:
        return NO_SEAT
    first = min(candidates, key=lambda s: (s.timestamp or 0, s.id))
    return (first.id, session_path(first.id))


@dataclass(frozen=True)
class ManagerState:
    """What the Manager object's properties read."""

    config: Config
    n_sessions: int


@dataclass(frozen=True)
class UserObject:
    """What a User object's properties read: the user and its sessions (for Display)."""

    user: UserView
    sessions: tuple[SessionView, ...]


M, S, U = Prop[ManagerState], Prop[SessionView], Prop[UserObject]


# -- the interfaces ----------------------------------------------------------------------------

def _const(value: Any) -> Callable[[object], Any]:
    return lambda _obj: value


MANAGER = InterfaceSpec(
    MANAGER_IFACE,
    methods=(
        _m("GetSession", "session_id:s", "object_path:o"),
        _m("GetSessionByPID", "pid:u", "object_path:o"),
        _m("GetUser", "uid:u", "object_path:o"),
        _m("GetUserByPID", "pid:u", "object_path:o"),
        _m("ListSessions", "", "sessions:a(susso)"),
        _m("ListUsers", "", "users:a(uso)"),
        _m("ListSeats", "", "seats:a(so)"),
        _m("CreateSession",
           "uid:u pid:u service:s type:s class:s desktop:s seat_id:s vtnr:u tty:s display:s "
           "remote:b remote_user:s remote_host:s properties:a(sv)",
           "session_id:s object_path:o runtime_path:s fifo_fd:h uid:u seat_id:s vtnr:u "
           "existing:b"),
        _m("CreateSessionWithPIDFD",
           "uid:u pidfd:h service:s type:s class:s desktop:s seat_id:s vtnr:u tty:s display:s "
           "remote:b remote_user:s remote_host:s flags:t properties:a(sv)",
           "session_id:s object_path:o runtime_path:s fifo_fd:h uid:u seat_id:s vtnr:u "
           "existing:b"),
        _m("ReleaseSession", "session_id:s"),
        _m("TerminateSession", "session_id:s"),
        _m("TerminateUser", "uid:u"),
        _m("KillSession", "session_id:s who:s signal_number:i"),
        _m("KillUser", "uid:u signal_number:i"),
        _m("SetUserLinger", "uid:u enable:b interactive:b"),
    ),
    signals=(
        _m("SessionNew", "session_id:s object_path:o"),
        _m("SessionRemoved", "session_id:s object_path:o"),
        _m("UserNew", "uid:u object_path:o"),
        _m("UserRemoved", "uid:u object_path:o"),
    ),
    properties=(
        M("NAutoVTs", "u", _const(0)),
        M("KillUserProcesses", "b",
           lambda m: m.config.kill_user_processes is KillMode.YES),
        M("KillOnlyUsers", "as", lambda m: list(m.config.kill_only_users)),
        M("KillExcludeUsers", "as",
           lambda m: ["root"] if m.config.kill_exclude_users is None
           else list(m.config.kill_exclude_users)),
        M("IdleHint", "b", _const(False)),
        M("IdleSinceHint", "t", _const(0)),
        M("IdleSinceHintMonotonic", "t", _const(0)),
        M("BlockInhibited", "s", _const("")),
        M("DelayInhibited", "s", _const("")),
        M("Docked", "b", _const(False)),
        M("UserStopDelayUSec", "t", lambda m: usec(m.config.user_stop_delay_sec)),
        M("StopIdleSessionUSec", "t", lambda m: usec(m.config.stop_idle_session_sec)),
        M("RemoveIPC", "b", lambda m: m.config.remove_ipc),
        M("SessionsMax", "t", lambda m: m.config.sessions_max),
        M("NCurrentSessions", "t", lambda m: m.n_sessions),
    ),
)

SESSION = InterfaceSpec(
    SESSION_IFACE,
    methods=(_m("Terminate"), _m("Kill", "who:s signal_number:i")),
    properties=(
        S("Id", "s", lambda s: s.id),
        S("User", "(uo)", lambda s: [s.uid, user_path(s.uid)]),
        S("Name", "s", lambda s: s.user),
        S("Timestamp", "t", lambda s: realtime_usec(s.timestamp)),
        S("TimestampMonotonic", "t", lambda s: monotonic_usec(s.timestamp)),
        S("VTNr", "u", _const(0)),
        S("Seat", "(so)", _const(list(NO_SEAT))),
        S("TTY", "s", lambda s: s.tty or ""),
        S("Display", "s", _const("")),
        S("Remote", "b", lambda s: is_remote_host(s.remote_host or "")),
        S("RemoteHost", "s", lambda s: s.remote_host or ""),
        S("RemoteUser", "s", lambda s: s.remote_user or ""),
        S("Service", "s", lambda s: s.service or ""),
        S("Desktop", "s", _const("")),
        S("Scope", "s", lambda s: PurePath(s.scope).name),
        S("Leader", "u", lambda s: s.leader or 0),
        S("Audit", "u", lambda s: audit_id(s.id)),
        S("Type", "s", lambda s: s.type),
        S("Class", "s", lambda s: s.class_),
        S("Active", "b", lambda s: s.state == "active"),
        S("State", "s", lambda s: s.state),
        S("IdleHint", "b", _const(False)),
        S("IdleSinceHint", "t", _const(0)),
        S("IdleSinceHintMonotonic", "t", _const(0)),
        S("LockedHint", "b", _const(False)),
    ),
)

USER = InterfaceSpec(
    USER_IFACE,
    methods=(_m("Terminate"), _m("Kill", "signal_number:i")),
    properties=(
        U("UID", "u", lambda u: u.user.uid),
        U("GID", "u", lambda u: u.user.gid),
        U("Name", "s", lambda u: u.user.name),
        U("Timestamp", "t", lambda u: realtime_usec(u.user.timestamp)),
        U("TimestampMonotonic", "t", lambda u: monotonic_usec(u.user.timestamp)),
        U("RuntimePath", "s", lambda u: u.user.runtime_path or ""),
        U("Service", "s", lambda u: f"user@{u.user.uid}.service"),
        U("Slice", "s", lambda u: PurePath(u.user.slice).name),
        U("Display", "(so)", lambda u: list(elect_display(u.sessions))),
        U("State", "s", lambda u: u.user.state),
        U("Sessions", "a(so)",
           lambda u: [[s, session_path(s)] for s in u.user.sessions]),
        U("IdleHint", "b", _const(False)),
        U("IdleSinceHint", "t", _const(0)),
        U("IdleSinceHintMonotonic", "t", _const(0)),
        U("Linger", "b", lambda u: bool(u.user.linger)),
    ),
)

# -- introspection -----------------------------------------------------------------------------

_DOCTYPE = ('<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"\n'
            ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">\n')

# logoutd sends no PropertiesChanged: clients must re-read (loginctl always does).
_NO_CHANGE_SIGNAL = ('   <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal"'
                     ' value="false"/>')

_STANDARD = """\
 <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId">
   <arg type="s" name="machine_uuid" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect">
   <arg name="xml_data" type="s" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Properties">
  <method name="Get">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="out" type="v"/>
  </method>
  <method name="GetAll">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="props" direction="out" type="a{sv}"/>
  </method>
  <method name="Set">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="in" type="v"/>
  </method>
  <signal name="PropertiesChanged">
   <arg type="s" name="interface_name"/>
   <arg type="a{sv}" name="changed_properties"/>
   <arg type="as" name="invalidated_properties"/>
  </signal>
 </interface>
"""


def _interface_xml(spec: InterfaceSpec) -> list[str]:
    lines = [f" <interface name={quoteattr(spec.name)}>"]
    for prop in spec.properties:
        lines.append(f"  <property name={quoteattr(prop.name)} type={quoteattr(prop.type)}"
                     ' access="read">')
        lines.append(_NO_CHANGE_SIGNAL)
        lines.append("  </property>")
    for method in spec.methods:
        args = [(a, "in") for a in method.args_in] + [(a, "out") for a in method.args_out]
        if not args:
            lines.append(f"  <method name={quoteattr(method.name)}/>")
            continue
        lines.append(f"  <method name={quoteattr(method.name)}>")
        lines += [f"   <arg type={quoteattr(a.type)} name={quoteattr(a.name)} direction=\"{d}\"/>"
                  for a, d in args]
        lines.append("  </method>")
    for signal in spec.signals:
        lines.append(f"  <signal name={quoteattr(signal.name)}>")
        lines += [f"   <arg type={quoteattr(a.type)} name={quoteattr(a.name)}/>"
                  for a in signal.args_in]
        lines.append("  </signal>")
    lines.append(" </interface>")
    return lines


def introspect(spec: InterfaceSpec | None, children: Sequence[str] = ()) -> str:
    """The XML for one object: the standard interfaces, its own, then its child nodes."""
    lines = [_DOCTYPE + "<node>"]
    if spec is not None:
        lines.append(_STANDARD.rstrip("\n"))
        lines += _interface_xml(spec)
    lines += [f" <node name={quoteattr(child)}/>" for child in children]
    lines.append("</node>")
    return "\n".join(lines) + "\n"
