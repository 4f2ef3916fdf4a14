"""The socket server and logoutctl, in-process, over a manager on fakes (no root needed); the
helpers every tests/adapters (and tests/contract) module shares: open_session, ctl, nss."""

from __future__ import annotations

import asyncio
import contextlib
import io
import pwd
import shutil
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from logoutd.api.client import Client
from logoutd.api.server import ApiServer
from logoutd.api.service import DaemonInfo, Service
from logoutd.cli.ctl import main
from tests.unit.conftest import ALICE, BOB, ROOT, Core, make_core


@dataclass
class Served:
    core: Core
    socket: Path
    loop: asyncio.AbstractEventLoop
    server: ApiServer

    def run(self, fn, *args):  # type: ignore[no-untyped-def]
        """Run fn on the server's loop thread (the core is single-threaded)."""
        future: asyncio.Future[object] = asyncio.run_coroutine_threadsafe(_call(fn, *args), self.loop)
        return future.result(5)

    def exchange(self, data: bytes) -> bytes:
        """Send raw bytes, half-close, and return all the server sent until it closed."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(str(self.socket))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := s.recv(65536):
                received += chunk
        return received


async def _call(fn, *args):  # type: ignore[no-untyped-def]
    return fn(*args)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as s:
        yield s


@contextlib.contextmanager
def serving(tmp_path: Path, **server_options: Any) -> Iterator[Served]:
    """The in-process server over fakes; `server_options` go to ApiServer (limits, ...)."""
    core = make_core()
    reloads: list[int] = []
    info = DaemonInfo(reload=lambda: {"reloaded": True, "count": reloads.append(1) or len(reloads)},
                      config_files=lambda: [], cgroup_root=str(tmp_path / "cg"))
    # A world-traversable dir: tests connect as other uids too (pytest's tmp_path is 0700).
    sock_dir = Path(tempfile.mkdtemp(prefix="logoutd-test-"))
    sock_dir.chmod(0o755)
    path = sock_dir / "api.sock"
    loop = asyncio.new_event_loop()
    server = ApiServer(Service(core.manager, info), path, **server_options)
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        yield Served(core, path, loop, server)
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


def open_session(served: Served, uid: int = 1000) -> dict[str, object]:
    leader = served.run(served.core.world.spawn, 0)
    with Client(served.socket) as c:
        return c.call("create_session", uid=uid, leader=leader.pid, service="sshd")["session"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def ctl(served: Served, *argv: str, tty: bool = False, **environ: str) -> tuple[int, str, str]:
    out, err = (Terminal() if tty else io.StringIO()), (Terminal() if tty else io.StringIO())
    rc = main(list(argv), {"LOGOUTD_SOCKET": str(served.socket), **environ}, out, err)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def nss(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake core's accounts, as NSS would answer for them."""
    accounts = {a.uid: a for a in (ALICE, BOB, ROOT)}

    def by_uid(uid: int) -> pwd.struct_passwd:
        a = accounts[uid]
        return pwd.struct_passwd((a.name, "x", a.uid, a.gid, "", a.home, "/bin/sh"))

    def by_name(name: str) -> pwd.struct_passwd:
        for uid, account in accounts.items():
            if account.name == name:
                return by_uid(uid)
        raise KeyError(name)

    monkeypatch.setattr(pwd, "getpwuid", by_uid)
    monkeypatch.setattr(pwd, "getpwnam", by_name)
