"""The socket API: framing, validation, errors, authorization by SO_PEERCRED."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from logoutd.api.client import Client
from logoutd.api.protocol import MAX_MESSAGE
from logoutd.errors import AccessDenied, InvalidArgument, NoSuchSession, NotRunning, ProtocolError
from tests.adapters.conftest import Served, open_session
from tests.readable import for_users

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")


def raw(served: Served, data: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in served.exchange(data).splitlines()]


def test_create_list_get_release(served: Served) -> None:
    session = open_session(served)
    with Client(served.socket) as c:
        listed = c.call("list_sessions")["sessions"]
        assert [s["id"] for s in listed] == [session["id"]]
        assert listed[0]["state"] == "active" and listed[0]["user"] == "alice"
        assert c.call("get_session", id=session["id"])["session"]["scope"] == session["scope"]
        released = c.call("release_session", leader=session["leader"])["session"]
        assert released["state"] == "closing"
        assert c.call("list_users")["users"][0]["name"] == "alice"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"uid": "1000", "leader": 5}, "must be int"),
        ({"uid": True, "leader": 5}, "must be int"),
        ({"leader": 5}, "Missing parameter 'uid'"),
        ({"uid": 1000, "leader": 5, "bogus": 1}, "Unknown parameter 'bogus'"),
        ({"uid": 1000, "leader": 5, "service": "a\0b"}, "NUL"),
    ],
)
def test_bad_params_are_refused_and_change_nothing(served: Served, params: dict[str, object],
                                                   message: str) -> None:
    with Client(served.socket) as c, pytest.raises(InvalidArgument, match=message):
        c.call("create_session", **params)
    assert not served.core.manager.sessions


def test_unknown_method_and_session(served: Served) -> None:
    with Client(served.socket) as c:
        with pytest.raises(InvalidArgument, match="Unknown method 'frobnicate'"):
            c.call("frobnicate")
        with pytest.raises(NoSuchSession, match=r"No session '42' known\."):
            c.call("get_session", id="42")
        with pytest.raises(InvalidArgument, match="Invalid signal 99"):
            open_session(served)
            c.call("kill_session", id="c1", signal=99)


def test_malformed_json_gets_an_error_and_the_connection_goes_on(served: Served) -> None:
    answers = raw(served, b"{not json\n" + b'{"v": 1, "method": "status"}\n')
    assert answers[0]["ok"] is False
    assert answers[0]["error"]["code"] == "protocol_error"  # type: ignore[index]
    assert answers[1]["ok"] is True


@pytest.mark.parametrize("line", [b"[1, 2]\n", b'{"method": 5}\n', b'{"v": 2, "method": "status"}\n',
                                  b'{"method": "status", "params": []}\n'])
def test_wrong_shapes(served: Served, line: bytes) -> None:
    [answer] = raw(served, line)
    assert answer["ok"] is False and answer["error"]["code"] == "protocol_error"  # type: ignore[index]


def test_oversized_request_is_refused_and_closed(served: Served) -> None:
    answers = raw(served, b'{"method": "status", "params": {"x": "' + b"a" * MAX_MESSAGE + b'"}}\n')
    assert len(answers) == 1 and "too large" in str(answers[0]["error"])


def test_half_written_request(served: Served) -> None:
    [answer] = raw(served, b'{"v": 1, "method": "sta')
    assert "Incomplete" in str(answer["error"])


def test_client_reports_absent_daemon(tmp_path: object) -> None:
    with pytest.raises(NotRunning, match=r"logoutd is not running \(no socket at /nonexistent/api\.sock"):
        Client("/nonexistent/api.sock").call("status")


def test_request_id_is_echoed(served: Served) -> None:
    [answer] = raw(served, b'{"v": 1, "id": 7, "method": "status"}\n')
    assert answer["id"] == 7 and answer["ok"] is True


def _as_user(served: Served, as_uid: int, method: str, **params: object) -> tuple[bool, str]:
    """Call from a child process running as uid: SO_PEERCRED decides, not the request."""
    code = (
        "import json, sys\n"
        "from logoutd.api.client import Client\n"
        "from logoutd.errors import LogoutdError\n"
        f"try:\n    Client({str(served.socket)!r}).call({method!r}, **json.loads(sys.argv[1]))\n"
        "    print('ok')\n"
        "except LogoutdError as e:\n    print(e.code, e.message)\n"
    )
    # The system python: the venv's interpreter may sit under root's 0700 home (pyenv).
    src = str(for_users(Path(__file__).resolve().parents[2] / "src"))
    result = subprocess.run(
        ["/usr/bin/python3", "-c", code, json.dumps(params)],
        user=as_uid, capture_output=True, text=True, check=False, timeout=30,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, cwd="/",
    )
    out = result.stdout.strip() or result.stderr.strip()
    return out == "ok", out


@needs_root
def test_authorization_by_peer_credentials(served: Served) -> None:
    session = open_session(served, uid=1000)
    leader = served.run(served.core.world.spawn, 0)
    nobody = 65534
    ok, out = _as_user(served, nobody, "create_session", uid=1000, leader=leader.pid)
    assert not ok and out.startswith("access_denied"), out
    ok, out = _as_user(served, nobody, "release_session", id=session["id"])
    assert not ok and out.startswith("access_denied"), out
    ok, out = _as_user(served, nobody, "terminate_session", id=session["id"])
    assert not ok and "may not terminate session" in out, out
    ok, out = _as_user(served, nobody, "kill_session", id=session["id"], signal=15)
    assert not ok and out.startswith("access_denied"), out
    ok, out = _as_user(served, nobody, "reload")
    assert not ok and out.startswith("access_denied"), out
    ok, out = _as_user(served, nobody, "list_sessions")
    assert ok, out  # anyone may look
    assert served.core.manager.sessions[session["id"]].state == "active"  # nothing changed


@needs_root
def test_owner_may_terminate_own_session(served: Served) -> None:
    session = open_session(served, uid=1000)
    ok, out = _as_user(served, 1000, "terminate_session", id=session["id"])
    assert ok, out
    assert session["id"] not in served.core.manager.sessions


def test_access_denied_error_class() -> None:
    assert AccessDenied("x").code == "access_denied" and ProtocolError("x").exit_status == 11


@needs_root
def test_linger_self_follows_linger_self_allow(served: Served) -> None:
    from logoutd.config.model import Config

    served.run(served.core.manager.set_config, Config(linger_self_allow=("bob", "@ops")))
    ok, out = _as_user(served, 1000, "set_linger", enable=True)
    assert not ok and out.startswith("access_denied"), out
    assert "user alice is not in LingerSelfAllow=bob @ops" in out, out
    assert "alice" not in served.core.userfiles.linger
    denied = served.core.audit.events("linger")[-1]
    assert denied["granted"] is False and "LingerSelfAllow=" in denied["rule"]

    served.core.ports.userdb.groups["alice"] = ("alice", "ops")  # type: ignore[attr-defined]
    ok, out = _as_user(served, 1000, "set_linger", enable=True)
    assert ok, out
    assert "alice" in served.core.userfiles.linger
    assert served.core.audit.events("linger")[-1]["granted"] is True
    ok, out = _as_user(served, 1001, "set_linger", uid=1000, enable=False)
    assert not ok and out.startswith("access_denied"), out  # never another user's
