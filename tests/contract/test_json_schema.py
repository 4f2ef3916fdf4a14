"""logoutctl --json, schema 1: the exact keys of every document and object type.

docs/logoutctl.md ("JSON output") documents these. Adding, removing or renaming a key is a
schema change: bump JSON_SCHEMA_VERSION, update the documentation, then this test.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import signal
from pathlib import Path
from typing import Any

import pytest

from logoutd.cli.ctl import main
from logoutd.cli.output import JSON_SCHEMA_VERSION
from logoutd.core.ports import Account
from tests.adapters.conftest import Served, open_session
from tests.fakes import FakeSpawner
from tests.unit.conftest import ALICE, BOB, ROOT

SESSION = {"id", "uid", "user", "leader", "service", "tty", "remote_host", "remote_user", "type",
           "class", "state", "scope", "timestamp", "stop_cause", "kill_reason", "stop_action"}
USER = {"uid", "gid", "name", "state", "sessions", "linger", "runtime_path", "slice", "timestamp"}
PROCESS = {"pid", "cmdline", "cgroup"}
SESSION_KILL = {"session", "who", "signal", "signalled"}
USER_KILL = {"uid", "user", "signal", "signalled"}
LINGER = {"uid", "name", "linger"}
CONFIG = {"files", "options"}
OPTION = {"section", "key", "value", "unset", "source", "doc"}
SOURCE = {"file", "line"}
RELOAD = {"reloaded", "error", "files", "warnings", "ignored"}
CHECK = {"files", "warnings", "fatal", "ignored", "ok", "summary"}
CONFIG_WARNING = {"file", "line", "key", "value", "message", "accepted", "note", "ignored", "text"}
UNIT = {"name", "kind", "uid", "user", "state", "pids", "main_pid", "created", "cgroup"}
STATUS = {"version", "pid", "uptime", "cgroup_root", "sessions", "users", "config_files", "dbus"}
SESSION_PROPERTIES = ["Id", "User", "Name", "Timestamp", "VTNr", "Seat", "TTY", "Remote",
                      "RemoteHost", "RemoteUser", "Service", "Scope", "Leader", "Type", "Class",
                      "Active", "State", "StopCause", "StopAction", "KillReason"]
USER_PROPERTIES = ["UID", "GID", "Name", "Timestamp", "RuntimePath", "Service", "Slice", "State",
                   "Sessions", "Linger"]
MANAGER_PROPERTIES = ["KillUserProcesses", "KillOnlyUsers", "KillExcludeUsers",
                      "UserStopDelayUSec", "StopIdleSessionUSec", "IdleActionUSec", "RemoveIPC",
                      "SessionsMax", "NCurrentSessions", "RuntimeDirectorySize",
                      "SessionStopTimeoutUSec", "UserStopTimeoutUSec", "ReleaseTimeoutUSec",
                      "AuditLog", "KeepAllowUsers", "KeepAllowGroups", "LingerSelfAllow",
                      "AutoKeep", "SdLoginFiles", "KeepTmux", "KeepScreen", "KeepNohup", "KeepUserWhileUnits",
                      "KeepUserMaxUSec"]


@pytest.fixture
def world(served: Served, monkeypatch: pytest.MonkeyPatch) -> Served:
    """Two sessions of alice, one of bob; this process in alice's first scope; NSS knows them."""
    accounts = {a.uid: a for a in (ALICE, BOB, ROOT)}

    def entry(uid: int) -> pwd.struct_passwd:
        a = accounts[uid]
        return pwd.struct_passwd((a.name, "x", a.uid, a.gid, "", a.home, "/bin/sh"))

    def by_name(name: str) -> pwd.struct_passwd:
        return entry(next(uid for uid, a in accounts.items() if a.name == name))

    monkeypatch.setattr(pwd, "getpwuid", entry)
    monkeypatch.setattr(pwd, "getpwnam", by_name)
    first = open_session(served, ALICE.uid)
    open_session(served, ALICE.uid)
    open_session(served, BOB.uid)
    # The fake cgroup tree has no files: give the first scope a real cgroup.procs to read.
    scope = Path(json_of(served, "status")["status"]["cgroup_root"]) / first["scope"]
    scope.mkdir(parents=True)
    (scope / "cgroup.procs").write_text(f"{os.getpid()}\n")
    return served


def json_of(served: Served, *argv: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    assert main([*argv, "--json"], {"LOGOUTD_SOCKET": str(served.socket)}, out, err) == 0, err
    document: dict[str, Any] = json.loads(out.getvalue())
    assert document["schema"] == JSON_SCHEMA_VERSION == 1
    assert len(document) == 2, document.keys()
    return document


def only(document: dict[str, Any], kind: str) -> Any:
    assert set(document) == {"schema", kind}
    return document[kind]


def test_sessions(world: Served) -> None:
    sessions = only(json_of(world, "list-sessions"), "sessions")
    assert len(sessions) == 3 and all(set(s) == SESSION for s in sessions)
    status = only(json_of(world, "session-status", "c1", "c3"), "sessions")
    assert [set(s) for s in status] == [SESSION | {"processes"}] * 2
    assert [set(p) for p in status[0]["processes"]] == [PROCESS]
    assert status[0]["processes"][0]["pid"] == os.getpid()
    kills = only(json_of(world, "kill-session", "c2", "--signal", "CONT"), "kills")
    assert [set(k) for k in kills] == [SESSION_KILL] and kills[0]["signal"] == signal.SIGCONT
    terminated = only(json_of(world, "terminate-session", "c2"), "sessions")
    assert [set(s) for s in terminated] == [SESSION]


def test_users(world: Served) -> None:
    users = only(json_of(world, "list-users"), "users")
    assert [set(u) for u in users] == [USER, USER]
    status = only(json_of(world, "user-status", "alice"), "users")
    assert [set(u) for u in status] == [USER | {"processes"}]
    assert {p["pid"] for p in status[0]["processes"]} == {os.getpid()}
    kills = only(json_of(world, "kill-user", "1001", "-s", "CONT"), "kills")
    assert [set(k) for k in kills] == [USER_KILL]
    assert [set(x) for x in only(json_of(world, "enable-linger", "bob"), "linger")] == [LINGER]
    assert [set(x) for x in only(json_of(world, "disable-linger", "bob"), "linger")] == [LINGER]
    assert [set(u) for u in only(json_of(world, "terminate-user", "bob"), "users")] == [USER]


def test_properties(world: Served) -> None:
    [session] = only(json_of(world, "show-session", "c1"), "properties")
    assert list(session) == SESSION_PROPERTIES
    assert all(isinstance(v, str) for v in session.values())
    [user] = only(json_of(world, "show-user", "alice"), "properties")
    assert list(user) == USER_PROPERTIES
    [manager] = only(json_of(world, "show-session"), "properties")
    assert list(manager) == MANAGER_PROPERTIES
    assert only(json_of(world, "show-user"), "properties") == [manager]
    [picked] = only(json_of(world, "show-session", "c1", "-p", "State,Id"), "properties")
    assert list(picked) == ["Id", "State"]


def test_daemon(world: Served) -> None:
    config = only(json_of(world, "show-config"), "config")
    assert set(config) == CONFIG
    assert all(set(o) == OPTION for o in config["options"])
    assert all(o["source"] is None or set(o["source"]) == SOURCE for o in config["options"])
    assert set(only(json_of(world, "reload"), "reload")) == RELOAD
    assert set(only(json_of(world, "status"), "status")) == STATUS


def test_check_config(tmp_path: Path) -> None:
    conf = tmp_path / "etc/systemd/logind.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[Login]\nKillUserProcesses=permisive\n[Login\n")
    out, err = io.StringIO(), io.StringIO()
    assert main(["check-config", str(tmp_path), "--json"], {}, out, err) == 1, err
    document = json.loads(out.getvalue())
    assert document["schema"] == JSON_SCHEMA_VERSION and len(document) == 2
    check = only(document, "check_config")
    assert set(check) == CHECK
    assert [set(w) for w in check["warnings"]] == [CONFIG_WARNING] and set(check["fatal"]) == CONFIG_WARNING


def test_units(world: Served) -> None:
    uid = os.getuid()
    world.core.ports.userdb.accounts[uid] = Account(uid, os.getgid(), "tester", "/tmp")  # type: ignore[attr-defined]
    world.core.ports.spawner = FakeSpawner(world.core.world)
    open_session(world, uid)
    out, err = io.StringIO(), io.StringIO()
    argv = ["--json", "run", "--unit", "job", "--", "sleep", "1"]  # --json before the command
    assert main(argv, {"LOGOUTD_SOCKET": str(world.socket)}, out, err) == 0, err
    started = only(json.loads(out.getvalue()), "unit")
    assert set(started) == UNIT | {"log"}
    units = only(json_of(world, "list-units"), "units")
    assert [set(u) for u in units] == [UNIT]
    assert [set(u) for u in only(json_of(world, "stop-unit", "job"), "units")] == [UNIT]


LEFTOVER = {"session", "user", "uid", "action", "recorded_at", "pid", "ppid", "proc_uid", "comm",
            "exe", "cmdline", "start_time", "tty", "why"}


def test_leftovers(world: Served) -> None:
    from logoutd.config.model import Config, KillMode

    world.run(world.core.manager.set_config, Config(kill_user_processes=KillMode.PERMISSIVE))
    session = world.core.manager.sessions["c3"]
    leader = world.core.world.procs[session.leader_pid]
    world.core.world.spawn(uid=BOB.uid, cgroup=leader.cgroup)
    world.run(world.core.world.exit, leader.pid)
    records = only(json_of(world, "leftovers", "--session", "c3"), "leftovers")
    assert records and all(set(r) == LEFTOVER for r in records)
    assert all(isinstance(r["why"], list) for r in records)
