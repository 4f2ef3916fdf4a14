"""org.freedesktop.systemd1 as one user's manager: each call answered by the Service's own
methods (start_scope, start_unit, stop_unit), so the same [Policy], audit and errors apply.

Units are logoutd's keep units of that user; jobs finish at once (start) or when the unit is
gone (stop), and are announced with JobRemoved as systemd does. What is not served answers
with systemd's and sd-bus's error names.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import math
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbus_fast import Message, MessageType, Variant

from logoutd import __version__
from logoutd.api.service import Caller, Service
from logoutd.core.unit import Unit, UnitState
from logoutd.errors import LogoutdError
from logoutd.login1.labels import escape, unescape

log = logging.getLogger("logoutd.userbus")
BUS_NAME = "org.freedesktop.systemd1"
ROOT = "/org/freedesktop/systemd1"
UNIT_PREFIX = f"{ROOT}/unit/"
JOB_PREFIX = f"{ROOT}/job/"
MANAGER = "org.freedesktop.systemd1.Manager"
UNIT = "org.freedesktop.systemd1.Unit"
SERVICE = "org.freedesktop.systemd1.Service"
SCOPE = "org.freedesktop.systemd1.Scope"
PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
PEER = "org.freedesktop.DBus.Peer"
UINT64_MAX = 2**64 - 1
CLD_EXITED, CLD_KILLED = 1, 2

ERROR_NAMES = {
    "access_denied": "org.freedesktop.DBus.Error.AccessDenied",
    "invalid_argument": "org.freedesktop.DBus.Error.InvalidArgs",
    "limits_exceeded": "org.freedesktop.DBus.Error.LimitsExceeded",
    "no_such_process": "org.freedesktop.systemd1.NoSuchProcess",
    "no_such_unit": "org.freedesktop.systemd1.NoSuchUnit",
    "unit_exists": "org.freedesktop.systemd1.UnitExists",
    "not_available": "org.freedesktop.DBus.Error.NotSupported",
}

# Transient-unit properties that change nothing here, accepted so that stock clients work:
# logoutd places units itself (Slice), collects them when empty, and has no journal or pty.
IGNORED = {"Description", "CollectMode", "AddRef", "SendSIGHUP", "Slice"}
SERVICE_TYPES = {"simple", "exec"}


POLICY_DENIED = "logoutd.Error.KeepDenied"  # [Policy] refused the keep
_DENIED = "Keeping processes after logout is denied: "
_DENIED_BY_POLICY = ("Keeping processes after logout is denied by the administrator's policy "
                     "(logoutd [Policy]): ")


class BusFailure(LogoutdError):
    """An error that already has its D-Bus name."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def unit_path(name: str) -> str:
    return UNIT_PREFIX + escape(name)


def _unknown_property(name: str) -> BusFailure:
    return BusFailure("org.freedesktop.DBus.Error.PropertyReadOnly",
                      f"Cannot set property {name}, or unknown property.")


@dataclass
class Job:
    id: int
    unit: str
    type: str

    @property
    def path(self) -> str:
        return f"{JOB_PREFIX}{self.id}"


@dataclass(frozen=True)
class Peer:
    """One connection as the handler sees it: who, which program, how to answer."""

    caller: Caller
    client: str
    send: Callable[[Message], None]


class Systemd1:
    """One user's systemd1 objects; `broadcast` reaches every connection of that user."""

    def __init__(self, service: Service, uid: int, broadcast: Callable[[Message], None],
                 next_job: Callable[[], int]) -> None:
        self.service = service
        self.uid = uid
        self.broadcast = broadcast
        self.next_job = next_job
        self.stopping: dict[str, list[Job]] = {}  # unit name -> stop jobs waiting for its end

    # -- dispatch -----------------------------------------------------------------------

    async def handle(self, peer: Peer, msg: Message) -> None:
        """Answer one method call (anything else is ignored, as sd-bus does)."""
        if msg.message_type is not MessageType.METHOD_CALL:
            return
        then: Callable[[], None] | None = None
        try:
            try:
                signature, body = await self._call(peer, msg)
            except (TypeError, ValueError, KeyError, IndexError) as e:
                # A variant of the wrong type inside a(sv): the signature was right.
                raise BusFailure("org.freedesktop.DBus.Error.InvalidArgs",
                                 f"Invalid argument: {e}") from None
            then = next((b.then for b in body if isinstance(b, _After)), None)
            body = [str(b) if isinstance(b, _After) else b for b in body]
            reply = Message(message_type=MessageType.METHOD_RETURN, reply_serial=msg.serial,
                            destination=msg.sender, sender=BUS_NAME, signature=signature,
                            body=body)
        except LogoutdError as e:
            if e.code == "access_denied" and e.message.startswith(_DENIED):
                # Not AccessDenied: systemctl and systemd-run print that one as "Access denied"
                # whatever its text, and the user is owed the reason.
                e = BusFailure(POLICY_DENIED, _DENIED_BY_POLICY + e.message[len(_DENIED):])
            name = e.name if isinstance(e, BusFailure) else ERROR_NAMES.get(
                e.code, "org.freedesktop.DBus.Error.Failed")
            reply = Message(message_type=MessageType.ERROR, reply_serial=msg.serial,
                            destination=msg.sender, sender=BUS_NAME, error_name=name,
                            signature="s", body=[e.message])
        if not msg.flags & 1:  # NO_REPLY_EXPECTED
            peer.send(reply)
        if then is not None:
            then()

    async def _call(self, peer: Peer, msg: Message) -> tuple[str, list[Any]]:
        path, interface, member = msg.path or "", msg.interface or "", msg.member or ""
        signature = msg.signature or ""
        if path == UNIT_PREFIX + "self":  # the caller's own unit, as systemd resolves it
            path = self._unit_of(peer.caller.pid) or path
        if interface == PEER:
            if member == "Ping" and signature == "":
                return "", []
            if member == "GetMachineId" and signature == "":
                return "s", [_machine_id()]
        interfaces = self._interfaces(path)
        if interfaces is None:
            raise BusFailure("org.freedesktop.DBus.Error.UnknownObject",
                             f"Unknown object '{path}'.")
        if interface == INTROSPECTABLE and member == "Introspect" and signature == "":
            return "s", [_introspect(path, interfaces)]
        if interface == PROPERTIES:
            return self._properties(path, interfaces, member, signature, list(msg.body))
        handler = self._method(path, interface, member, interfaces)
        if handler is None or handler[0] != signature:
            raise BusFailure("org.freedesktop.DBus.Error.UnknownMethod",
                             f"Unknown method {member} or interface {interface}.")
        result: tuple[str, list[Any]] = await handler[1](peer, path, *msg.body)
        return result

    def _interfaces(self, path: str) -> list[str] | None:
        if path == ROOT:
            return [MANAGER]
        if path in ("/", "/org", "/org/freedesktop"):
            return []
        if path.startswith(UNIT_PREFIX):
            name = unescape(path[len(UNIT_PREFIX):])
            if name is None:
                return None
            state = self._state(name)
            if state is None:
                return None
            return [UNIT, SCOPE if name.endswith(".scope") else SERVICE]
        return None

    def _method(self, path: str, interface: str, member: str,
                interfaces: list[str]) -> tuple[str, Callable[..., Any]] | None:
        methods: dict[str, tuple[str, Callable[..., Any]]]
        if path == ROOT and interface in ("", MANAGER):
            methods = {
                "StartTransientUnit": ("ssa(sv)a(sa(sv))", self.start_transient_unit),
                "StartUnit": ("ss", self.start_unit),
                "StopUnit": ("ss", self.stop_unit),
                "KillUnit": ("ssi", self.kill_unit),
                "GetUnit": ("s", self.get_unit),
                "LoadUnit": ("s", self.get_unit),
                "GetUnitByPID": ("u", self.get_unit_by_pid),
                "GetUnitProcesses": ("s", self.get_unit_processes),
                "ListUnits": ("", self.list_units),
                "ListUnitsFiltered": ("as", self.list_units_filtered),
                "ListUnitsByPatterns": ("asas", self.list_units),
                "ListUnitsByNames": ("as", self.list_units_by_names),
                "Subscribe": ("", self.nothing),
                "Unsubscribe": ("", self.nothing),
            }
            return methods.get(member)
        if path.startswith(UNIT_PREFIX) and interface in ("", UNIT):
            methods = {"Stop": ("s", self.unit_stop), "Kill": ("si", self.unit_kill),
                       "Start": ("s", self.unit_start)}
            return methods.get(member)
        return None

    # -- Manager ------------------------------------------------------------------------

    async def nothing(self, peer: Peer, path: str) -> tuple[str, list[Any]]:
        return "", []

    async def start_transient_unit(self, peer: Peer, path: str, name: str, mode: str,
                                   properties: list[Any], aux: list[Any]) -> tuple[str, list[Any]]:
        if aux:
            raise BusFailure("org.freedesktop.DBus.Error.NotSupported",
                             "Auxiliary units are not supported by logoutd.")
        props = {str(key): value.value if isinstance(value, Variant) else value
                 for key, value in properties}
        log.debug("%s (pid %d) StartTransientUnit %s: %s", peer.client, peer.caller.pid, name,
                  ", ".join(props))
        if name.endswith(".scope"):
            unit = self._start_scope(peer, name, props)
        elif name.endswith(".service"):
            unit = await self._start_service(peer, name, props)
        else:
            raise BusFailure("org.freedesktop.DBus.Error.InvalidArgs",
                             f"Unit type of {name} not supported for transient units: logoutd "
                             "starts scopes and services.")
        return self._job_done(unit, "start")

    def _start_scope(self, peer: Peer, name: str, props: dict[str, Any]) -> str:
        for key in props:
            if key not in IGNORED | {"PIDs"}:
                raise _unknown_property(key)
        pids = [int(p) for p in props.get("PIDs", [])] or [0]
        if len(pids) != 1:
            raise BusFailure("org.freedesktop.DBus.Error.NotSupported",
                             "logoutd moves one process into a new scope; PIDs has "
                             f"{len(pids)}.")
        pid = pids[0] or peer.caller.pid
        answer = self.service.start_scope(peer.caller, pid=pid, name=name, client=peer.client)
        return str(answer["unit"]["name"])

    async def _start_service(self, peer: Peer, name: str, props: dict[str, Any]) -> str:
        argv: list[str] | None = None
        env: dict[str, str] = {}
        cwd: str | None = None
        for key, value in props.items():
            if key in IGNORED:
                continue
            if key == "ExecStart":
                if len(value) != 1:
                    raise BusFailure("org.freedesktop.DBus.Error.NotSupported",
                                     "logoutd runs one ExecStart= command per service.")
                executable, args, _ = value[0]
                argv = [str(executable), *(str(a) for a in args[1:])]
            elif key == "Environment":
                for item in value:
                    variable, equals, text = str(item).partition("=")
                    if not equals:
                        raise BusFailure("org.freedesktop.DBus.Error.InvalidArgs",
                                         f"Invalid environment assignment: {item}")
                    env[variable] = text
            elif key == "WorkingDirectory":
                directory = str(value).lstrip("!-")
                cwd = None if directory in ("", "~") else directory
            elif (key == "Type" and value in SERVICE_TYPES) or \
                    (key == "RemainAfterExit" and value is False):
                continue
            else:
                raise _unknown_property(key)
        if argv is None:
            raise BusFailure("org.freedesktop.DBus.Error.InvalidArgs",
                             "Service has no ExecStart= setting, which is only allowed for "
                             "RemainAfterExit=yes services.")
        answer = await self.service.start_unit(peer.caller, argv=argv, name=name, env=env,
                                               cwd=cwd, client=peer.client)
        return str(answer["unit"]["name"])

    def _job_done(self, name: str, type: str) -> tuple[str, list[Any]]:
        """A start job: done once answered. JobRemoved follows the reply, as in systemd."""
        job = Job(self.next_job(), name, type)
        return "o", [_After(job.path, lambda: self._job_removed(job, "done"))]

    def _job_removed(self, job: Job, result: str) -> None:
        self.broadcast(Message.new_signal(ROOT, MANAGER, "JobRemoved", "uoss",
                                          [job.id, job.path, job.unit, result]))

    async def start_unit(self, peer: Peer, path: str, name: str,
                         mode: str) -> tuple[str, list[Any]]:
        unit = self._find(name)
        if unit is None or unit.state is not UnitState.ACTIVE:
            raise BusFailure("org.freedesktop.systemd1.NoSuchUnit",
                             f"Unit {name} not found: logoutd has no unit files; start "
                             "commands with systemd-run --user.")
        return self._job_done(unit.name, "start")

    async def stop_unit(self, peer: Peer, path: str, name: str,
                        mode: str) -> tuple[str, list[Any]]:
        unit = self._loaded(name)
        self.service.stop_unit(peer.caller, name=unit.name, uid=self.uid)
        job = Job(self.next_job(), unit.name, "stop")
        if unit.finalized:
            return "o", [_After(job.path, lambda: self._job_removed(job, "done"))]
        self.stopping.setdefault(unit.name, []).append(job)
        loop_deadline = self.service.config.user_stop_timeout_sec
        if math.isfinite(loop_deadline):
            self.service.manager.ports.clock.call_later(
                loop_deadline + 10, lambda: self._stop_overdue(job))
        return "o", [job.path]

    def _stop_overdue(self, job: Job) -> None:
        jobs = self.stopping.get(job.unit, [])
        if job in jobs:
            jobs.remove(job)
            self._job_removed(job, "timeout")

    def unit_finished(self, name: str) -> None:
        """A unit of this user is gone: its stop jobs are done, its watchers are told."""
        for job in self.stopping.pop(name, []):
            self._job_removed(job, "done")
        state = self._state(name)
        if state is not None:
            changed = {k: state[k] for k in ("ActiveState", "SubState")}
            for interface in (UNIT, SCOPE if name.endswith(".scope") else SERVICE):
                self.broadcast(Message.new_signal(
                    unit_path(name), PROPERTIES, "PropertiesChanged", "sa{sv}as",
                    [interface, {k: Variant("s", v) for k, v in changed.items()}, []]))

    async def kill_unit(self, peer: Peer, path: str, name: str, who: str,
                        signo: int) -> tuple[str, list[Any]]:
        unit = self._loaded(name)
        if who in ("", "all", "main-fail", "all-fail"):
            who = "all"
        elif who == "control":
            raise BusFailure("org.freedesktop.systemd1.NoSuchProcess",
                             "No control process to kill")
        if not 1 <= signo < signal.NSIG:
            raise BusFailure("org.freedesktop.DBus.Error.InvalidArgs",
                             f"Signal number out of range: {signo}")
        unit.kill(who, signo)
        return "", []

    async def get_unit(self, peer: Peer, path: str, name: str) -> tuple[str, list[Any]]:
        unit = self._find(name)
        if unit is not None:
            return "o", [unit_path(unit.name)]
        finished = self.service.manager.units.result(self.uid, name)
        if finished is not None and finished["result"] not in ("success", "done"):
            return "o", [unit_path(str(finished["name"]))]
        raise BusFailure("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")

    def _unit_of(self, pid: int) -> str | None:
        for unit in self._units():
            if pid in self.service.manager.ports.cgroups.pids(unit.cgroup):
                return unit_path(unit.name)
        return None

    async def get_unit_by_pid(self, peer: Peer, path: str, pid: int) -> tuple[str, list[Any]]:
        pid = pid or peer.caller.pid
        found = self._unit_of(pid)
        if found is not None:
            return "o", [found]
        raise BusFailure("org.freedesktop.systemd1.NoUnitForPID",
                         f"PID {pid} does not belong to any loaded unit.")

    async def get_unit_processes(self, peer: Peer, path: str,
                                 name: str) -> tuple[str, list[Any]]:
        unit = self._loaded(name)
        cgroup = self._control_group(unit)
        rows = [[cgroup, pid, _cmdline(pid)]
                for pid in sorted(self.service.manager.ports.cgroups.pids(unit.cgroup))]
        return "a(sus)", [rows]

    def _control_group(self, unit: Unit) -> str:
        """The unit's cgroup as systemd names it: from the cgroup2 mount's root."""
        root = self.service.manager.ports.cgroups.root_in_mount.rstrip("/")
        return f"{root}/{unit.cgroup}"

    async def list_units(self, peer: Peer, path: str, states: list[str] | None = None,
                         patterns: list[str] | None = None) -> tuple[str, list[Any]]:
        """systemctl's filters: any of the states (load, active or sub), any of the globs."""
        rows = [self._row(u.name) for u in self._units()
                if not patterns or any(fnmatch.fnmatchcase(u.name, p) for p in patterns)]
        if states:
            rows = [r for r in rows if {r[2], r[3], r[4]} & set(states)]
        return "a(ssssssouso)", [rows]

    async def list_units_filtered(self, peer: Peer, path: str,
                                  states: list[str]) -> tuple[str, list[Any]]:
        return await self.list_units(peer, path, states)

    async def list_units_by_names(self, peer: Peer, path: str,
                                  names: list[str]) -> tuple[str, list[Any]]:
        rows = []
        for name in names:
            unit = self._find(name)
            rows.append(self._row(unit.name) if unit is not None else
                        [name, "", "not-found", "inactive", "dead", "", unit_path(name), 0, "",
                         "/"])
        return "a(ssssssouso)", [rows]

    def _row(self, name: str) -> list[Any]:
        state = self._state(name) or {}
        return [name, state.get("Description", ""), "loaded", state.get("ActiveState", ""),
                state.get("SubState", ""), "", unit_path(name), 0, "", "/"]

    # -- Unit objects ---------------------------------------------------------------------

    def _name_of(self, path: str) -> str:
        return unescape(path[len(UNIT_PREFIX):]) or ""

    async def unit_stop(self, peer: Peer, path: str, mode: str) -> tuple[str, list[Any]]:
        return await self.stop_unit(peer, path, self._name_of(path), mode)

    async def unit_start(self, peer: Peer, path: str, mode: str) -> tuple[str, list[Any]]:
        return await self.start_unit(peer, path, self._name_of(path), mode)

    async def unit_kill(self, peer: Peer, path: str, who: str,
                        signo: int) -> tuple[str, list[Any]]:
        return await self.kill_unit(peer, path, self._name_of(path), who, signo)

    # -- properties -----------------------------------------------------------------------

    def _properties(self, path: str, interfaces: list[str], member: str, signature: str,
                    body: list[Any]) -> tuple[str, list[Any]]:
        if member == "Set" and signature == "ssv":
            raise BusFailure("org.freedesktop.DBus.Error.PropertyReadOnly",
                             f"Property '{body[1]}' is not writable.")
        if member == "Get" and signature == "ss":
            interface, name = body
            for candidate, values in self._values(path, interfaces).items():
                if interface in ("", candidate) and name in values:
                    return "v", [values[name]]
            if interface and interface not in interfaces:
                raise BusFailure("org.freedesktop.DBus.Error.UnknownInterface",
                                 f"Unknown interface '{interface}'.")
            raise BusFailure("org.freedesktop.DBus.Error.UnknownProperty",
                             f"Unknown property '{name}'.")
        if member == "GetAll" and signature == "s":
            [interface] = body
            if interface and interface not in interfaces:
                raise BusFailure("org.freedesktop.DBus.Error.UnknownInterface",
                                 f"Unknown interface '{interface}'.")
            merged: dict[str, Variant] = {}
            for candidate, values in self._values(path, interfaces).items():
                if interface in ("", candidate):
                    merged.update(values)
            return "a{sv}", [merged]
        raise BusFailure("org.freedesktop.DBus.Error.UnknownMethod",
                         f"Unknown method {member} or interface {PROPERTIES}.")

    def _values(self, path: str, interfaces: list[str]) -> dict[str, dict[str, Variant]]:
        if path == ROOT:
            return {MANAGER: {
                "Version": Variant("s", f"logoutd {__version__}"),
                "Features": Variant("s", ""),
                "Virtualization": Variant("s", ""),
                "Architecture": Variant("s", ""),
                "SystemState": Variant("s", "running"),
                "NNames": Variant("u", len(self._units())),
                "NJobs": Variant("u", 0),
                "NFailedUnits": Variant("u", 0),
                "Environment": Variant("as", []),
            }}
        if not path.startswith(UNIT_PREFIX):
            return {}
        name = self._name_of(path)
        s = self._state(name)
        if s is None:
            return {}
        unit = {
            "Id": Variant("s", name), "Names": Variant("as", [name]),
            "Following": Variant("s", ""), "Description": Variant("s", s["Description"]),
            "LoadState": Variant("s", "loaded"), "ActiveState": Variant("s", s["ActiveState"]),
            "SubState": Variant("s", s["SubState"]), "FreezerState": Variant("s", "running"),
            "FragmentPath": Variant("s", ""), "SourcePath": Variant("s", ""),
            "DropInPaths": Variant("as", []), "UnitFileState": Variant("s", ""),
            "UnitFilePreset": Variant("s", ""), "Transient": Variant("b", True),
            "NeedDaemonReload": Variant("b", False), "CanStart": Variant("b", False),
            "CanStop": Variant("b", True), "CanReload": Variant("b", False),
            "Documentation": Variant("as", []), "Triggers": Variant("as", []),
            "TriggeredBy": Variant("as", []), "Job": Variant("(uo)", [0, "/"]),
            "InvocationID": Variant("ay", s["InvocationID"]),
            "CollectMode": Variant("s", "inactive"),
            "StateChangeTimestamp": Variant("t", s["Created"]),
            "ActiveEnterTimestamp": Variant("t", s["Created"]),
            "InactiveExitTimestamp": Variant("t", s["Created"]),
            "InactiveExitTimestampMonotonic": Variant("t", 0),
            "ActiveEnterTimestampMonotonic": Variant("t", 0),
            "InactiveEnterTimestamp": Variant("t", 0),
            "InactiveEnterTimestampMonotonic": Variant("t", 0),
        }
        kind = {
            "Result": Variant("s", s["Result"]), "ControlGroup": Variant("s", s["ControlGroup"]),
            "Slice": Variant("s", ""), "CPUUsageNSec": Variant("t", UINT64_MAX),
            "MemoryCurrent": Variant("t", UINT64_MAX), "TasksCurrent": Variant("t", UINT64_MAX),
            "IPIngressBytes": Variant("t", UINT64_MAX), "IPEgressBytes": Variant("t", UINT64_MAX),
            "IOReadBytes": Variant("t", UINT64_MAX), "IOWriteBytes": Variant("t", UINT64_MAX),
        }
        if name.endswith(".scope"):
            return {UNIT: unit, SCOPE: kind}
        kind.update({
            "Type": Variant("s", "simple"), "MainPID": Variant("u", s["MainPID"]),
            "ExecMainPID": Variant("u", s["MainPID"]),
            "ExecMainCode": Variant("i", s["ExecMainCode"]),
            "ExecMainStatus": Variant("i", s["ExecMainStatus"]),
            "ExecMainStartTimestamp": Variant("t", s["Created"]),
            "ExecMainExitTimestamp": Variant("t", 0), "NRestarts": Variant("u", 0),
            "StatusText": Variant("s", ""), "StatusErrno": Variant("i", 0),
        })
        return {UNIT: unit, SERVICE: kind}

    def _state(self, name: str) -> dict[str, Any] | None:
        """What the properties show of a live unit, or of one that finished (kept in memory for
        `systemd-run --wait`); None for a unit that is neither."""
        unit = self._find(name)
        if unit is not None:
            active, sub = {
                UnitState.STARTING: ("activating", "start"),
                UnitState.ACTIVE: ("active", "running"),
                UnitState.STOPPING: ("deactivating", "stop-sigterm"),
                UnitState.FAILED: ("failed", "failed"),
            }[unit.state]
            return {"Name": unit.name, "Description": f"logoutd {unit.kind} of {unit.user.name}",
                    "ActiveState": active, "SubState": sub,
                    "Result": "success", "ControlGroup": self._control_group(unit),
                    "MainPID": unit.main.pid if unit.main is not None else 0,
                    "ExecMainCode": 0, "ExecMainStatus": 0,
                    "Created": int(unit.created * 1e6),
                    "InvocationID": _invocation_id(unit.key, unit.created)}
        finished = self.service.manager.units.result(self.uid, name)
        if finished is None:
            return None
        result = str(finished["result"])
        status = finished.get("exit_status")
        code = 0 if status is None else CLD_EXITED if status >= 0 else CLD_KILLED
        failed = result not in ("success", "done")
        return {"Name": finished["name"], "Description": f"logoutd {finished['kind']}",
                "ActiveState": "failed" if failed else "inactive",
                "SubState": "failed" if failed else "dead",
                "Result": "success" if result == "done" else result, "ControlGroup": "",
                "MainPID": 0, "ExecMainCode": code,
                "ExecMainStatus": 0 if status is None else abs(int(status)), "Created": 0,
                "InvocationID": b""}

    # -- lookups --------------------------------------------------------------------------

    def _units(self) -> list[Unit]:
        return [u for u in self.service.manager.units.all() if u.user.uid == self.uid]

    def _find(self, name: str) -> Unit | None:
        return self.service.manager.units.find(self.uid, name)

    def _loaded(self, name: str) -> Unit:
        unit = self._find(name)
        if unit is None:
            raise BusFailure("org.freedesktop.systemd1.NoSuchUnit", f"Unit {name} not loaded.")
        return unit


class _After(str):
    """An object path whose reply must go out before something else (JobRemoved)."""

    def __new__(cls, path: str, then: Callable[[], None]) -> _After:
        self = super().__new__(cls, path)
        self.then = then
        return self

    then: Callable[[], None]


def _invocation_id(key: str, created: float) -> bytes:
    return hashlib.sha256(f"{key}/{created}".encode()).digest()[:16]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read(4096).rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _machine_id() -> str:
    try:
        return Path("/etc/machine-id").read_text().strip()
    except OSError:
        return "0" * 32


def _introspect(path: str, interfaces: list[str]) -> str:
    """Which interfaces and methods the object answers (children are not listed)."""
    methods = {
        MANAGER: ["StartTransientUnit", "StartUnit", "StopUnit", "KillUnit", "GetUnit",
                  "LoadUnit", "GetUnitByPID", "ListUnits", "ListUnitsFiltered",
                  "ListUnitsByPatterns", "ListUnitsByNames", "Subscribe", "Unsubscribe"],
        UNIT: ["Start", "Stop", "Kill"], SERVICE: [], SCOPE: [],
    }
    parts = ['<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"',
             ' "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">', "<node>"]
    for interface in [PEER, INTROSPECTABLE, PROPERTIES, *interfaces]:
        parts.append(f' <interface name="{interface}">')
        parts.extend(f'  <method name="{m}"/>' for m in methods.get(interface, []))
        parts.append(" </interface>")
    parts.append("</node>")
    return "\n".join(parts) + "\n"
