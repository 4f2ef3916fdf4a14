"""The root-only socket answers a request whose whole line is there at accept in that very loop
step (api/server.py `_answer_at_once`, the PAM hook's path); anything else goes the usual way."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from logoutd.api.server import FIRST_LINE_WAIT
from tests.adapters.conftest import Served, serving


def _lines(s: socket.socket, count: int) -> list[dict[str, Any]]:
    data = b""
    while data.count(b"\n") < count:
        chunk = s.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return [json.loads(line) for line in data.splitlines()]


def _spy(served: Served) -> list[str]:
    """The methods answered at accept, in order."""
    at_once: list[str] = []
    server = served.server
    original = server._answer_now
    inside = [False]

    def answer_at_once(peer: Any) -> bool:
        inside[0] = True
        try:
            return original_at_once(peer)
        finally:
            inside[0] = False

    def answer_now(caller: Any, line: bytes) -> Any:
        if inside[0]:
            at_once.append(json.loads(line)["method"])
        return original(caller, line)

    original_at_once = server._answer_at_once
    server._answer_at_once = answer_at_once  # type: ignore[method-assign]
    server._answer_now = answer_now  # type: ignore[method-assign]
    return at_once


def _sent_while_busy(served: Served, data: bytes) -> socket.socket:
    """A connection that sends data while the server's loop sleeps: it is there at accept."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    served.loop.call_soon_threadsafe(time.sleep, 0.3)
    time.sleep(0.05)
    s.connect(str(served.socket))
    s.sendall(data)
    return s


@pytest.fixture
def root_served(tmp_path: Path):  # type: ignore[no-untyped-def]
    with serving(tmp_path, root_only=True) as served:
        yield served


def test_a_whole_line_at_accept_is_answered_there_and_the_next_one_by_the_task(
        root_served: Served) -> None:
    at_once = _spy(root_served)
    leader = root_served.run(root_served.core.world.spawn, 0)
    create = json.dumps({"v": 1, "method": "create_session",
                         "params": {"uid": 1000, "leader": leader.pid, "service": "sshd"}})
    s = _sent_while_busy(root_served,
                         create.encode() + b"\n" + b'{"v": 1, "method": "list_sessions"}\n')
    first, second = _lines(s, 2)
    s.close()
    assert first["ok"] and first["result"]["session"]["leader"] == leader.pid, first
    assert second["ok"] and [x["id"] for x in second["result"]["sessions"]] == \
        [first["result"]["session"]["id"]], second
    assert at_once == ["create_session"]  # the second line: by the connection's task, after


def test_a_partial_line_at_accept_is_left_to_the_connection(root_served: Served) -> None:
    at_once = _spy(root_served)
    s = _sent_while_busy(root_served, b'{"v": 1, "method": "sta')
    time.sleep(0.4)  # accepted, the half line peeked and left in the socket
    s.sendall(b'tus"}\n')
    [answer] = _lines(s, 1)
    s.close()
    assert answer["ok"] and "sessions" in answer["result"], answer
    assert at_once == []


def test_an_error_at_accept_is_answered_like_any_other(root_served: Served) -> None:
    at_once = _spy(root_served)
    s = _sent_while_busy(
        root_served, b'{"v": 1, "method": "create_session", "params": {"uid": 1000, "leader": 1}}\n')
    [answer] = _lines(s, 1)
    s.close()
    assert not answer["ok"] and answer["error"]["code"] in ("invalid_argument", "invalid_params"), answer
    assert at_once == ["create_session"]
    assert not root_served.core.manager.sessions


def test_a_line_sent_just_after_connect_is_answered_on_the_bare_socket(root_served: Served) -> None:
    """The hook's usual case: the daemon wakes at connect(), before the line is there."""
    at_once = _spy(root_served)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(root_served.socket))
    time.sleep(0.1)  # accepted by now, with nothing to read yet
    assert root_served.server._waiting, "not waiting for the first line"
    s.sendall(b'{"v": 1, "method": "status"}\n')
    [answer] = _lines(s, 1)
    assert answer["ok"], answer
    assert at_once == ["status"]
    s.sendall(b'{"v": 1, "method": "status"}\n')  # the connection goes on, through its task
    assert _lines(s, 1)[0]["ok"]
    s.close()
    assert at_once == ["status"]


def test_a_silent_root_peer_is_handed_to_its_task_after_the_wait(root_served: Served) -> None:
    at_once = _spy(root_served)
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(str(root_served.socket))
    time.sleep(FIRST_LINE_WAIT + 0.3)
    assert not root_served.server._waiting
    s.sendall(b'{"v": 1, "method": "status"}\n')
    assert _lines(s, 1)[0]["ok"]
    s.close()
    assert at_once == []


def test_closing_the_server_releases_a_peer_still_awaited(tmp_path: Path) -> None:
    with serving(tmp_path, root_only=True) as served:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(5)
        s.connect(str(served.socket))
        time.sleep(0.1)
        assert served.server._waiting
    assert s.recv(100) == b""  # closed by the server's close, not left open
    s.close()
