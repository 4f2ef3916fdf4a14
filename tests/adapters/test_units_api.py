"""Units over the socket and through logoutctl in-process: params, authorization, output."""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import socket
import time
from typing import Any, NoReturn

import pytest

from logoutd.api.client import Client
from logoutd.api.protocol import encode_request
from logoutd.cli.ctl import main
from logoutd.cli.ctl import run as run_verb
from logoutd.config.model import Config
from logoutd.core.ports import Account
from logoutd.errors import (
    InvalidArgument,
    LogoutdError,
    NoSuchUnit,
    ProcessGone,
    UnitExists,
)
from tests.adapters.conftest import Served, Terminal, ctl, open_session
from tests.fakes import FakeProcess, FakeSpawner


class Execed(Exception):
    pass


@pytest.fixture
def me(served: Served) -> FakeProcess:
    """This test process as a process of its own uid in a session of that user."""
    uid = os.getuid()
    served.core.ports.userdb.accounts[uid] = Account(uid, os.getgid(), "tester", "/home/tester")  # type: ignore[attr-defined]
    served.core.ports.spawner = FakeSpawner(served.core.world)
    session = open_session(served, uid)
    proc = FakeProcess(os.getpid(), uid=uid, cgroup=served.core.world.abs(str(session["scope"])))
    served.core.world.procs[proc.pid] = proc
    return proc


@pytest.mark.parametrize(("params", "message"), [
    ({}, "Missing parameter 'argv' for start_unit."),
    ({"argv": "true"}, "Parameter 'argv' of start_unit must be list of strings, not str."),
    ({"argv": ["true", 1]}, "Parameter 'argv' of start_unit must be list of strings."),
    ({"argv": ["a\0b"]}, "Parameter 'argv' of start_unit contains NUL."),
    ({"argv": ["true"], "env": ["A=b"]},
     "Parameter 'env' of start_unit must be object of strings, not list."),
    ({"argv": ["true"], "env": {"A": 1}}, "Parameter 'env' of start_unit must be object of strings."),
    ({"argv": ["true"], "env": {"A\0": "b"}}, "Parameter 'env' of start_unit contains NUL."),
    ({"argv": ["true"], "name": "a/b"}, "Invalid unit name 'a/b': it contains '/'."),
    ({"argv": ["true"], "name": "a" * 300}, "it is longer than 200 bytes."),
])
def test_start_unit_params_are_checked(served: Served, me: FakeProcess, params: dict[str, Any],
                                       message: str) -> None:
    with Client(served.socket) as c, pytest.raises(InvalidArgument) as e:
        c.call("start_unit", **params)
    assert e.value.message.endswith(message), e.value.message
    assert not served.core.manager.units.all()


def test_start_scope_defaults_to_the_callers_pid(served: Served, me: FakeProcess) -> None:
    with Client(served.socket) as c:
        result = c.call("start_scope", name="job")
        assert result["unit"]["name"] == "job.scope" and result["linger"] is False
        assert result["stop_delay_sec"] == 10.0 and result["log"] is None
        assert me.cgroup.endswith(f"user@{me.uid}.service/app.slice/job.scope")
        assert c.call("list_units")["units"] == [result["unit"]] != []
        assert result["unit"]["pids"] == [me.pid]
        with pytest.raises(ProcessGone, match=r"^Process 999999 does not exist\.$"):
            c.call("start_scope", pid=999999)


def test_cli_run_scope_prints_one_line_on_a_terminal_then_execs(
        served: Served, me: FakeProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    execed: list[list[str]] = []

    def fake_exec(argv: list[str]) -> NoReturn:
        execed.append(argv)
        raise Execed

    monkeypatch.setattr(run_verb, "_exec", fake_exec)
    with pytest.raises(Execed):
        ctl(served, "run", "--scope", "--", "sleep", "--x", "1", tty=True)
    assert execed == [["sleep", "--x", "1"]]
    name = served.core.manager.units.all()[0].name
    err = io.StringIO()
    with pytest.raises(Execed):  # not a terminal: silent
        main(["run", "--scope", "--unit", "quiet", "true"],
             {"LOGOUTD_SOCKET": str(served.socket)}, io.StringIO(), err)
    assert err.getvalue() == ""
    served.core.userfiles.set_linger("tester", True)
    term = Terminal()
    with pytest.raises(Execed):
        main(["run", "--scope", "--unit", "lingers", "true"],
             {"LOGOUTD_SOCKET": str(served.socket)}, io.StringIO(), term)
    assert term.getvalue() == "Running as lingers.scope: it survives logout; lingering: it keeps running.\n"
    assert name.startswith("run-u")


def test_cli_run_scope_message(served: Served, me: FakeProcess,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_exec(argv: list[str]) -> NoReturn:
        raise Execed

    monkeypatch.setattr(run_verb, "_exec", fake_exec)
    err = Terminal()
    with pytest.raises(Execed):
        main(["run", "--scope", "--unit", "job", "--", "true"],
             {"LOGOUTD_SOCKET": str(served.socket)}, io.StringIO(), err)
    assert err.getvalue() == (
        "Running as job.scope: it survives logout, and ends 10s after your last session unless "
        "you linger (logoutctl enable-linger).\n")
    config = served.core.manager.config
    for limit, told in ((math.inf, "also after your last session"),
                        (7200.0, "at most 2h after your last session")):
        served.core.manager.set_config(dataclasses.replace(
            config, keep_user_while_units=True, keep_user_max_sec=limit))
        err = Terminal()
        with pytest.raises(Execed):
            main(["run", "--scope", "--", "true"], {"LOGOUTD_SOCKET": str(served.socket)},
                 io.StringIO(), err)
        assert err.getvalue().endswith(f": it survives logout and runs until it ends, {told}.\n")


def test_cli_run_unit_list_and_stop(served: Served, me: FakeProcess) -> None:
    rc, out, err = ctl(served, "run", "--unit", "backup", "--setenv", "A=b", "-E", "C=d=e",
                       "--working-directory", "/srv", "--", "rsync", "-a", "x", "y")
    assert (rc, err) == (0, "")
    runtime = f"/run/user/{me.uid}"
    assert out == (f"Running as unit: backup.service; output goes to "
                   f"{runtime}/logoutd/backup.service.log\n"
                   "It survives logout, and ends 10s after your last session unless you linger "
                   "(logoutctl enable-linger).\n")
    request = served.core.ports.spawner.requests[0]  # type: ignore[attr-defined]
    assert request.argv == ("rsync", "-a", "x", "y") and request.cwd == "/srv"
    assert request.env["A"] == "b" and request.env["C"] == "d=e"
    rc, out, _ = ctl(served, "list-units")
    header, row = out.splitlines()[:2]
    assert header.split() == ["UNIT", "UID", "USER", "STATE", "PIDS", "SINCE"]
    assert row.split()[:5] == ["backup.service", str(me.uid), "tester", "active", "1"]
    assert out.endswith("\n1 units listed.\n")
    rc, out, _ = ctl(served, "list-units", "--json")
    unit = json.loads(out)["units"][0]
    assert unit["kind"] == "service" and unit["main_pid"] == unit["pids"][0]
    assert ctl(served, "stop-unit", "backup") == (0, "", "")
    assert ctl(served, "list-units") == (0, "No units.\n", "")


@pytest.mark.parametrize(("argv", "status", "message"), [
    (["run", "--unit", "a/b", "--", "true"], 2, "Invalid unit name 'a/b': it contains '/'."),
    (["run", "--unit", "..", "--", "true"], 2, "Invalid unit name '..': it contains '..'."),
    (["run", "--unit", "x" * 300, "--", "true"], 2, "it is longer than 200 bytes."),
    (["run", "--scope", "--wait", "--", "true"], 2, "need a service, not --scope."),
    (["run", "--bogus", "--", "true"], 2, "Unknown option '--bogus' for run."),
    (["run", "--unit"], 2, "Option '--unit' needs a value."),
    (["run", "--"], 2, "No command given (usage: run [OPTIONS] -- COMMAND…)."),
    (["stop-unit", "nope"], 14, "No unit 'nope' known."),
])
def test_cli_errors(served: Served, me: FakeProcess, argv: list[str], status: int,
                    message: str) -> None:
    rc, out, err = ctl(served, *argv)
    assert rc == status and out == "" and err.rstrip("\n").endswith(message), (rc, err)
    assert len(err.splitlines()) == 1 and not served.core.manager.units.all()


def test_cli_unit_errors_have_their_own_codes(served: Served, me: FakeProcess) -> None:
    assert ctl(served, "run", "--unit", "backup", "--", "true")[0] == 0
    assert ctl(served, "run", "--unit", "backup", "--", "true") == (
        15, "", "Unit backup.service already exists.\n")
    with Client(served.socket) as c:
        with pytest.raises(NoSuchUnit, match=r"^No unit 'nope' known\.$"):
            c.call("stop_unit", name="nope")
        with pytest.raises(UnitExists):
            c.call("start_unit", argv=["true"], name="backup.service")
        with pytest.raises(NoSuchUnit, match=r"^No finished unit 'backup' of uid \d+ known"):
            c.call("unit_result", name="backup")


def test_cli_policy_denial(served: Served, me: FakeProcess) -> None:
    served.core.manager.set_config(Config(keep_allow_users=("alice",)))
    rc, out, err = ctl(served, "run", "--unit", "x", "--", "true")
    assert rc == 4 and out == ""
    assert err == ("Keeping processes after logout is denied: user tester is not in "
                   "KeepAllowUsers=alice KeepAllowGroups=(empty).\n")


def test_start_unit_answers_when_the_child_reports_and_the_loop_serves_meanwhile(
        served: Served, me: FakeProcess) -> None:
    spawner: FakeSpawner = served.core.ports.spawner  # type: ignore[assignment]
    spawner.hold = True
    with socket.socket(socket.AF_UNIX) as waiting, Client(served.socket, timeout=1) as other:
        waiting.settimeout(5)
        waiting.connect(str(served.socket))
        waiting.sendall(encode_request("start_unit", {"argv": ["sleep", "1"], "name": "slow"}))
        wait_until(lambda: spawner.pending)
        assert other.call("status")["pid"] == os.getpid()  # answered while start_unit waits
        [unit] = other.call("list_units")["units"]
        assert (unit["name"], unit["state"]) == ("slow.service", "starting")
        waiting.settimeout(0.2)
        with pytest.raises(TimeoutError):
            waiting.recv(1)  # no answer before the child's report
        waiting.settimeout(5)
        [pid] = spawner.pending
        served.run(spawner.report, pid)
        answer = json.loads(waiting.makefile("rb").readline())
        assert answer["ok"] and answer["result"]["unit"]["state"] == "active", answer
        assert answer["result"]["log"].endswith("/logoutd/slow.service.log")

        waiting.sendall(encode_request("start_unit", {"argv": ["sleep", "1"], "name": "stuck"}))
        wait_until(lambda: spawner.pending)
        [pid] = spawner.pending
        message = ("Starting stuck.service as user tester did not finish within 5 s (stuck "
                   "entering the working directory /x); it was killed.")
        served.run(spawner.report, pid, LogoutdError(message))
        answer = json.loads(waiting.makefile("rb").readline())
        assert answer["error"] == {"code": "failed", "message": message}, answer
        assert [u["name"] for u in other.call("list_units")["units"]] == ["slow.service"]


def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
