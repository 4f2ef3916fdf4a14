"""`leftovers` over the real socket: root sees every record, a user only its own (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from logoutd.api.client import Client
from logoutd.core.leftovers import Leftover
from tests.adapters.conftest import Served
from tests.readable import for_users

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")


def record(session: str, user: str, uid: int, pid: int, cmdline: str) -> Leftover:
    return Leftover(session=session, user=user, uid=uid, action="killed", recorded_at=1.0,
                    pid=pid, ppid=1, proc_uid=uid, comm="sleep", exe="/usr/bin/sleep",
                    cmdline=cmdline, start_time=1.0, tty="", why=("no controlling tty",))


@pytest.fixture
def records(served: Served) -> Served:
    served.run(served.core.manager.leftovers.add, [
        record("c1", "alice", 1000, 501, "mysql -ppassword-of-alice"),
        record("c2", "bob", 1001, 502, "curl -H 'Authorization: bob-token'"),
        record("c2", "bob", 1001, 503, "sleep 1000"),
    ])
    return served


def call_as(served: Served, as_uid: int, **params: object) -> dict[str, Any]:
    """The leftovers call from a child process running as as_uid; its answer or its error."""
    code = (
        "import json, sys\n"
        "from logoutd.api.client import Client\n"
        "from logoutd.errors import LogoutdError\n"
        f"try:\n    r = Client({str(served.socket)!r}).call('leftovers', **json.loads(sys.argv[1]))\n"
        "    print(json.dumps({'ok': r}))\n"
        "except LogoutdError as e:\n    print(json.dumps({'error': [e.code, e.message]}))\n"
    )
    src = str(for_users(Path(__file__).resolve().parents[2] / "src"))
    result = subprocess.run(
        ["/usr/bin/python3", "-c", code, json.dumps(params)],
        user=as_uid, capture_output=True, text=True, check=False, timeout=30,
        env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, cwd="/",
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def pids(answer: dict[str, Any]) -> list[int]:
    return [r["pid"] for r in answer["ok"]["leftovers"]]


def test_root_sees_every_users_records(records: Served) -> None:
    with Client(records.socket) as c:
        assert [r["pid"] for r in c.call("leftovers")["leftovers"]] == [501, 502, 503]
        assert [r["pid"] for r in c.call("leftovers", uid=1001)["leftovers"]] == [502, 503]
        assert [r["pid"] for r in c.call("leftovers", session="c1")["leftovers"]] == [501]


@needs_root
def test_a_user_sees_only_its_own_records(records: Served) -> None:
    assert pids(call_as(records, 1000)) == [501]
    assert pids(call_as(records, 1001)) == [502, 503]
    assert pids(call_as(records, 1000, uid=1000)) == [501]
    assert pids(call_as(records, 1000, session="c1")) == [501]
    assert pids(call_as(records, 65534)) == []  # no records of its own: an empty list
    assert pids(call_as(records, 1000, session="c99")) == []  # unknown session: nothing


@needs_root
def test_another_users_records_are_refused_with_a_clear_message(records: Served) -> None:
    answer = call_as(records, 1000, uid=1001)
    assert answer["error"][0] == "access_denied", answer
    assert "uid 1000 may not see the leftovers of uid 1001" in answer["error"][1]
    assert "only root" in answer["error"][1]
    answer = call_as(records, 1000, session="c2")
    assert answer["error"][0] == "access_denied", answer
    assert "session c2 is not uid 1000's" in answer["error"][1]
    answer = call_as(records, 65534, session="c2", uid=65534)
    assert answer["error"][0] == "access_denied", answer
    assert "bob-token" not in json.dumps(answer)
