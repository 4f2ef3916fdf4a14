"""The in-process server's connection caps, error answers and resource failures, over a real
Unix socket (no root needed except where a test says so)."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from logoutd.api.client import choose_socket
from logoutd.api.connections import Limits
from logoutd.api.service import Caller
from tests.adapters.conftest import Served, serving


def connect(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(path))
    return s


def ask(s: socket.socket, line: bytes) -> dict[str, Any]:
    s.sendall(line)
    return read_line(s)


def read_line(s: socket.socket) -> dict[str, Any]:
    data = b""
    while not data.endswith(b"\n"):
        chunk = s.recv(65536)
        assert chunk, f"closed before an answer (got {data!r})"
        data += chunk
    answer: dict[str, Any] = json.loads(data)
    return answer


def closed_after(s: socket.socket) -> list[dict[str, Any]]:
    """Everything the server still sends, then EOF."""
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


STATUS = b'{"method": "status"}\n'


def test_a_uid_over_its_cap_loses_its_oldest_idle_connection(tmp_path: Path) -> None:
    with serving(tmp_path, limits=Limits(per_uid=3, total=100, exempt=frozenset())) as served:
        # (the test runs as root, whom the daemon's api socket exempts from the per-uid cap)
        conns = [connect(served.socket) for _ in range(3)]
        for s in conns:  # served in order: conns[0] is the oldest
            assert ask(s, STATUS)["ok"]
        assert ask(conns[0], STATUS)["ok"]  # ...no: now conns[1] is, its request is older
        fresh = connect(served.socket)
        assert ask(fresh, STATUS)["ok"]  # the fresh client gets in
        [notice] = closed_after(conns[1])
        assert notice["error"]["code"] == "limits_exceeded", notice
        assert "opened more than 3 connections" in notice["error"]["message"]
        for s in (conns[0], conns[2], fresh):
            assert ask(s, STATUS)["ok"]
        assert len(served.server.table) == 3
        for s in [*conns, fresh]:
            s.close()


def test_total_cap_drops_the_oldest_idle_and_never_one_inside_a_request(tmp_path: Path) -> None:
    release = asyncio.Event()

    class Slow:
        """A service whose 'wait' method is inside its request until released."""

        def call(self, caller: Caller, method: str, params: dict[str, Any]) -> Any:
            if method == "wait":
                async def wait() -> dict[str, Any]:
                    await release.wait()
                    return {"waited": True}
                return wait()
            return {"method": method}

    with serving(tmp_path, limits=Limits(per_uid=None, total=2)) as served:
        served.server.service = Slow()  # type: ignore[assignment]
        busy = connect(served.socket)
        busy.sendall(b'{"method": "wait"}\n')
        idle = connect(served.socket)
        assert ask(idle, STATUS)["ok"]
        table = served.server.table
        # busy: the waiting one; idle: the other, once its answer is drained
        wait_for(lambda: [c.busy for c in table.connections()] == [True, False])
        fresh = connect(served.socket)
        assert ask(fresh, STATUS)["ok"]
        [notice] = closed_after(idle)  # the idle one went, though younger than the busy one
        assert "more than 2 connections are open" in notice["error"]["message"]
        # Both left are now inside a request: a newcomer is refused, nothing is dropped.
        fresh.sendall(b'{"method": "wait"}\n')
        wait_for(lambda: all(c.busy for c in served.server.table.connections()))
        refused = connect(served.socket)
        [answer] = closed_after(refused)
        assert answer["error"]["code"] == "limits_exceeded"
        assert "all inside a request" in answer["error"]["message"]
        served.loop.call_soon_threadsafe(release.set)
        assert read_line(busy)["result"] == {"waited": True}
        assert read_line(fresh)["result"] == {"waited": True}
        for s in (busy, idle, fresh, refused):
            s.close()


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.mark.parametrize("line", [
    b"[" * 60000 + b"\n",
    b'{"method": "status", "params": ' + b'{"a": ' * 10000 + b"\n",
    b'{"method": "status", "id": ' + b"[" * 30000 + b"]" * 30000 + b"}\n",
])
def test_json_of_any_depth_is_a_protocol_error(served: Served, line: bytes,
                                               caplog: pytest.LogCaptureFixture) -> None:
    with connect(served.socket) as s:
        answer = ask(s, line)
        assert answer["ok"] is False and answer["error"]["code"] == "protocol_error", answer
        assert "nested too deeply" in answer["error"]["message"]
        assert ask(s, STATUS)["ok"]  # and the connection serves on
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_an_internal_error_is_an_answer_and_one_logged_traceback(
        served: Served, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def call(self, caller: Caller, method: str, params: dict[str, Any]) -> Any:
            if method == "boom":
                raise ValueError("a bug")
            if method == "unencodable":
                return {"x": object()}
            return {"ok": 1}

    served.server.service = Broken()  # type: ignore[assignment]
    with connect(served.socket) as s:
        for method in ("boom", "unencodable"):
            answer = ask(s, b'{"method": "%s", "id": 7}\n' % method.encode())
            assert answer["ok"] is False and answer["id"] == 7, answer
            assert answer["error"]["code"] == "internal_error", answer
            assert method in answer["error"]["message"]
        assert ask(s, STATUS)["result"] == {"ok": 1}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and all(r.exc_info for r in errors)
    assert "Internal error answering boom from uid" in errors[0].getMessage()


class FlakyListener:
    """The listening socket, whose accept() first runs out of descriptors a few times."""

    def __init__(self, sock: socket.socket, failures: int) -> None:
        self.sock = sock
        self.failures = failures

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failures:
            self.failures -= 1
            raise OSError(errno.EMFILE, "Too many open files")
        return self.sock.accept()

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


def test_accept_out_of_descriptors_sheds_an_idle_connection_and_goes_on(
        served: Served, caplog: pytest.LogCaptureFixture) -> None:
    server = served.server
    old = connect(served.socket)
    assert ask(old, STATUS)["ok"]
    wait_for(lambda: not server.table.connections()[0].busy)
    flaky = FlakyListener(server._sock, failures=3)  # type: ignore[arg-type]
    server.shed = server.shed_one
    server._sock = flaky  # type: ignore[assignment]
    t0 = time.monotonic()
    with connect(served.socket) as s:
        assert ask(s, STATUS)["ok"]
    took = time.monotonic() - t0
    assert flaky.failures == 0 and took < 3, took
    assert closed_after(old)[0]["error"]["code"] == "limits_exceeded"  # shed, once
    failed = [r for r in caplog.records if "Cannot accept a connection" in r.getMessage()]
    assert len(failed) == 3 and not any(r.exc_info for r in failed)
    assert "dropped the oldest idle user connection" in failed[0].getMessage()
    server._sock = flaky.sock
    old.close()


SYSTEM_PYTHON = "/usr/bin/python3"  # one any uid may run (the venv's may sit in a 0700 home)


@pytest.mark.skipif(os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK),
                    reason="needs root (to connect as another uid) and /usr/bin/python3")
def test_root_only_socket_refuses_other_uids_even_if_its_mode_is_widened(tmp_path: Path) -> None:
    with serving(tmp_path, root_only=True) as served:
        assert served.socket.stat().st_mode & 0o777 == 0o600
        assert ask(connect(served.socket), STATUS)["ok"]
        code = ("import socket, sys\n"
                "s = socket.socket(socket.AF_UNIX)\n"
                "try:\n    s.connect(sys.argv[1])\n"
                "except PermissionError:\n    print('EACCES'); sys.exit()\n"
                "try:\n"
                "    s.sendall(b'{\"method\": \"status\"}\\n'); s.settimeout(5)\n"
                "    print('closed' if s.recv(100) == b'' else 'answered')\n"
                "except (BrokenPipeError, ConnectionResetError):\n    print('closed')\n")

        def as_nobody() -> str:
            return subprocess.run([SYSTEM_PYTHON, "-I", "-c", code, str(served.socket)],
                                  user=65534, capture_output=True, text=True,
                                  timeout=10).stdout.strip()

        assert as_nobody() == "EACCES"
        served.socket.chmod(0o666)
        assert as_nobody() == "closed"


def test_root_prefers_root_sock_beside_the_api_socket(tmp_path: Path) -> None:
    api = tmp_path / "api.sock"
    env = {"LOGOUTD_SOCKET": str(api)}
    assert choose_socket(None, env, euid=0) == api  # no root.sock yet
    (tmp_path / "root.sock").touch()
    assert choose_socket(None, env, euid=0) == tmp_path / "root.sock"
    assert choose_socket(str(api), {}, euid=0) == tmp_path / "root.sock"
    assert choose_socket(None, env, euid=1000) == api
    assert choose_socket(str(api), {}, euid=1000) == api
    assert choose_socket(None, {}, euid=1000) == Path("/run/logoutd/api.sock")
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert choose_socket(str(other / "api.sock"), env, euid=0) == other / "api.sock"


def test_slowloris_is_cut_at_the_line_deadline_however_it_dribbles(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """A byte just before each idle period would end keeps no connection open: the deadline is
    for the whole line (IDLE_TIMEOUT = 60 s: a byte every 59 s is cut at 60 s)."""
    from logoutd.api import server as server_module

    monkeypatch.setattr(server_module, "IDLE_TIMEOUT", 1.0)
    with connect(served.socket) as s:
        s.settimeout(0.2)
        t0 = time.monotonic()
        closed_at = None
        while time.monotonic() - t0 < 5:
            try:
                s.send(b" ")
                if s.recv(100) == b"":
                    closed_at = time.monotonic() - t0
                    break
            except TimeoutError:
                continue
            except OSError:
                closed_at = time.monotonic() - t0
                break
        assert closed_at is not None and 0.8 < closed_at < 2.5, closed_at
    assert len(served.server.table) == 0
