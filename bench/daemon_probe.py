"""`python bench/daemon_probe.py OUT ARGS…`: logoutd with clocks on public entry points."""

from __future__ import annotations

import contextvars
import runpy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # bench/'s modules must not shadow anything the daemon imports

_out = open(sys.argv[1], "a", buffering=1)  # noqa: SIM115 (open for the daemon's lifetime)


@dataclass
class _Start:
    """One session start being timed; what its parts took so far."""

    source: str
    serial: int = 0  # login1: the CreateSession call's serial, which its reply names
    t0: float = field(default_factory=time.perf_counter)
    spent: dict[str, float] = field(
        default_factory=lambda: {"core": 0.0, "creds": 0.0, "move": 0.0, "mkdir": 0.0})
    done: bool = False

    def add(self, name: str, t0: float) -> None:
        self.spent[name] += time.perf_counter() - t0

    def finish(self, ok: bool) -> None:
        """One line to OUT: `<login1|api> <ok|error> total=s core=s creds=s move=s mkdir=s`."""
        total = time.perf_counter() - self.t0
        if self.source == "api":
            self.spent["core"] = total
        self.done = True
        fields = " ".join(f"{k}={v!r}" for k, v in {"total": total, **self.spent}.items())
        _out.write(f"{self.source} {'ok' if ok else 'error'} {fields}\n")


# The start the running code belongs to: a login1 handler's task inherits it from the context
# in which dbus-fast dispatched the call (the probe's handler sets it just before logoutd's).
_current: contextvars.ContextVar[_Start | None] = contextvars.ContextVar(
    "logoutd_bench_probe", default=None)


def _open() -> _Start | None:
    start = _current.get()
    return start if start is not None and not start.done else None


def _timed(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            if (start := _open()) is not None:
                start.add(name, t0)
    return wrapper


def _install() -> None:
    from logoutd.api.service import Service
    from logoutd.system.cgroups import CgroupTree

    CgroupTree.move = _timed("move", CgroupTree.move)  # type: ignore[method-assign]
    CgroupTree.create = _timed("mkdir", CgroupTree.create)  # type: ignore[method-assign]
    service_call = Service.call

    def call(self: Any, caller: Any, method: str, params: dict[str, Any]) -> Any:
        if method != "create_session":
            return service_call(self, caller, method, params)
        if (inside := _open()) is not None:  # login1's CreateSession: recorded at its reply
            t0 = time.perf_counter()
            try:
                return service_call(self, caller, method, params)
            finally:
                inside.add("core", t0)
        start = _Start("api")
        token = _current.set(start)
        ok = False
        try:
            result = service_call(self, caller, method, params)
            ok = True
            return result
        finally:
            _current.reset(token)
            start.finish(ok)

    Service.call = call  # type: ignore[method-assign]
    try:
        from dbus_fast import MessageType
        from dbus_fast.aio import MessageBus
    except ImportError:  # no dbus-fast: only the socket API is timed
        return
    connect, bus_call, send = MessageBus.connect, MessageBus.call, MessageBus.send

    def dispatched(msg: Any) -> bool:
        """Ahead of logoutd's handler: a CreateSession starts a clock; never claims a message."""
        is_create = msg.message_type is MessageType.METHOD_CALL and msg.member == "CreateSession"
        _current.set(_Start("login1", msg.serial) if is_create else None)
        return False

    async def connected(self: Any) -> Any:
        bus = await connect(self)
        bus.add_message_handler(dispatched)
        return bus

    async def timed_call(self: Any, msg: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await bus_call(self, msg)
        finally:
            if msg.member == "GetConnectionCredentials" and (start := _open()) is not None:
                start.add("creds", t0)

    def timed_send(self: Any, msg: Any) -> Any:
        start = _open()
        if (start is not None and start.source == "login1" and msg.reply_serial == start.serial
                and msg.message_type in (MessageType.METHOD_RETURN, MessageType.ERROR)):
            start.finish(msg.message_type is MessageType.METHOD_RETURN)
        return send(self, msg)

    MessageBus.connect = connected  # type: ignore[method-assign]
    MessageBus.call = timed_call  # type: ignore[method-assign]
    MessageBus.send = timed_send  # type: ignore[method-assign]


_install()
sys.argv = ["logoutd", *sys.argv[2:]]
runpy.run_module("logoutd", run_name="__main__", alter_sys=True)
