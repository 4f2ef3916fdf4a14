"""`python bench/daemon_probe.py OUT ARGS…` runs `python -m logoutd ARGS…` with clocks inside.

Where a session start goes inside the daemon, without changing src/: before logoutd starts,
the cgroup port's `create` (mkdir of the slice/scope) and `move` (the write to cgroup.procs),
login1's caller lookup and the two entry points of a session start are wrapped with
perf_counter() timers. For each session start one line is appended to OUT:

    <source> <ok|error> total=<s> core=<s> creds=<s> move=<s> mkdir=<s>

source `login1`: the D-Bus `CreateSession` handler, from the call's dispatch to its reply being
queued: `creds` is the caller's uid/pid from the bus daemon (GetConnectionCredentials, one
round trip), `core` the Service call (checks, mkdir, the cgroup.procs write, state files,
the New signals), the rest the reference FIFO and the reply. `api`: the socket API's
`create_session` (the PAM hook), total = core. The timers cost a few microseconds per call.
"""

from __future__ import annotations

import contextvars
import runpy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]  # bench/'s modules must not shadow anything the daemon imports

_current: contextvars.ContextVar[dict[str, float] | None] = contextvars.ContextVar(
    "logoutd_bench_probe", default=None)
_out = open(sys.argv[1], "a", buffering=1)  # noqa: SIM115 (open for the daemon's lifetime)


def _spent() -> dict[str, float]:
    return {"core": 0.0, "creds": 0.0, "move": 0.0, "mkdir": 0.0}


def _record(source: str, ok: bool, total: float, spent: dict[str, float]) -> None:
    fields = " ".join(f"{key}={value!r}" for key, value in {"total": total, **spent}.items())
    _out.write(f"{source} {'ok' if ok else 'error'} {fields}\n")


def _add(name: str, t0: float) -> None:
    spent = _current.get()
    if spent is not None:
        spent[name] += time.perf_counter() - t0


def _timed_port(name: str, original: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(self, *args, **kwargs)
        finally:
            _add(name, t0)
    return wrapper


def _install() -> None:
    from logoutd.api.service import Service
    from logoutd.system.cgroups import CgroupTree

    CgroupTree.move = _timed_port("move", CgroupTree.move)  # type: ignore[method-assign]
    CgroupTree.create = _timed_port("mkdir", CgroupTree.create)  # type: ignore[method-assign]

    service_call = Service.call

    def call(self: Any, caller: Any, method: str, params: dict[str, Any]) -> Any:
        if method != "create_session":
            return service_call(self, caller, method, params)
        if _current.get() is not None:  # login1's CreateSession: recorded there
            t0 = time.perf_counter()
            try:
                return service_call(self, caller, method, params)
            finally:
                _add("core", t0)
        spent = _spent()
        token = _current.set(spent)
        ok = False
        t0 = time.perf_counter()
        try:
            result = service_call(self, caller, method, params)
            ok = True
            return result
        finally:
            total = time.perf_counter() - t0
            _current.reset(token)
            spent["core"] = total
            _record("api", ok, total, spent)

    Service.call = call  # type: ignore[method-assign]

    try:
        from logoutd.login1.bus import Login1
    except ImportError:  # no dbus-fast: only the socket API is timed
        return
    create, lookup = Login1._create_session, Login1._caller

    async def caller(self: Any, msg: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await lookup(self, msg)
        finally:
            _add("creds", t0)

    async def create_session(self: Any, msg: Any, target: Any) -> Any:
        spent = _spent()
        token = _current.set(spent)
        ok = False
        t0 = time.perf_counter()
        try:
            result = await create(self, msg, target)
            ok = True
            return result
        finally:
            total = time.perf_counter() - t0
            _current.reset(token)
            _record("login1", ok, total, spent)

    Login1._create_session = create_session  # type: ignore[method-assign]
    Login1._caller = caller  # type: ignore[method-assign]


_install()
sys.argv = ["logoutd", *sys.argv[2:]]
runpy.run_module("logoutd", run_name="__main__", alter_sys=True)
