"""Closing the socket server ends every connection's task and gives every descriptor back,
even for connections accepted in the same loop iteration as the stop."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from pathlib import Path

from logoutd.api.server import ApiServer
from logoutd.api.service import DaemonInfo, Service
from tests.unit.conftest import make_core


def _server(directory: Path) -> ApiServer:
    info = DaemonInfo(reload=lambda: {}, config_files=lambda: [], cgroup_root="/x")
    return ApiServer(Service(make_core().manager, info), directory / "api.sock")


def test_close_ends_every_task_even_those_not_started_yet() -> None:
    async def scenario(directory: Path) -> None:
        server = _server(directory)
        await server.start()
        clients, accepted = [], []
        for _ in range(5):
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(str(server.path))
            clients.append(client)
        assert server._sock is not None
        for _ in clients:  # accepted, but their tasks have not run a single step
            sock, _addr = server._sock.accept()
            accepted.append(sock)
            server._accepted(sock)
        assert len(server.table) == 5
        await server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == [] and len(server.table) == 0
        assert [s.fileno() for s in accepted] == [-1] * 5  # closed, not left to the GC
        for client in clients:
            client.settimeout(1)
            assert client.recv(1) == b""  # the server's end is gone
            client.close()

    with tempfile.TemporaryDirectory(prefix="logoutd-test-") as directory:
        asyncio.run(scenario(Path(directory)))
