"""Leftovers and the audit trail on the pure core: what is recorded, when, and why."""

from __future__ import annotations

import logging
import signal

import pytest

from logoutd.config.model import Config, KillMode
from logoutd.core.leftovers import RECORD_MAX_PER_SESSION, escape_reasons, tty_name
from logoutd.core.ports import ProcessInfo
from logoutd.core.request import SessionRequest
from tests.fakes import FakeAudit
from tests.unit.conftest import Core, make_core


def _session_with_leftovers(core: Core):  # type: ignore[no-untyped-def]
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid, service="su-l"))
    nohup = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    nohup.ppid, nohup.sid, nohup.tty_nr = leader.pid, leader.pid, 34816  # pts/0, the login's session
    daemon = core.world.spawn(cgroup=leader.cgroup)  # ppid 1, its own session, no tty
    return session, leader, nohup, daemon


def test_permissive_records_every_leftover_with_reasons() -> None:
    core = make_core(Config(kill_user_processes=KillMode.PERMISSIVE))
    session, leader, nohup, daemon = _session_with_leftovers(core)
    core.world.exit(leader.pid)
    assert nohup.alive and daemon.alive
    records = {r.pid: r for r in core.manager.leftovers.query(session=session.id)}
    assert set(records) == {nohup.pid, daemon.pid}
    assert records[nohup.pid].why == ("ignores SIGHUP",)
    assert records[nohup.pid].tty == "pts/0" and records[nohup.pid].ppid == leader.pid
    assert records[daemon.pid].why == ("daemonized: leads its own session (setsid)", "no controlling tty")
    assert {r.action for r in records.values()} == {"kept"}
    assert records[daemon.pid].exe == "/usr/bin/sleep" and records[daemon.pid].user == "alice"
    assert len(core.audit.events("leftover")) == 2


def test_kill_mode_records_what_was_killed_only_with_an_audit_log() -> None:
    core = make_core()
    _, leader, nohup, daemon = _session_with_leftovers(core)
    core.world.exit(leader.pid)
    killed = core.manager.leftovers.query()
    assert {r.pid for r in killed} == {nohup.pid, daemon.pid} and {r.action for r in killed} == {"killed"}
    assert not nohup.alive and not daemon.alive

    quiet = make_core()
    quiet.ports.audit = FakeAudit(detailed=False)
    quiet.manager.ctx.ports.audit = quiet.ports.audit
    _, leader, _, _ = _session_with_leftovers(quiet)
    quiet.world.exit(leader.pid)
    assert quiet.manager.leftovers.query() == []  # a plain kill reads nothing from /proc


def test_audit_trail_of_a_session() -> None:
    core = make_core()
    session, leader, _, _ = _session_with_leftovers(core)
    core.world.exit(leader.pid)
    events = [e for e, _ in core.audit.records]
    assert events[0] == "session-new" and "session-stop" in events and "signalled" in events
    # (the fakes deliver the scope's emptiness synchronously, so "removed" may come first here)
    assert events.index("session-stop") < events.index("signalled") and "session-removed" in events
    stop = core.audit.events("session-stop")[0]
    assert stop == {"session": session.id, "user": "alice", "cause": "leader-exit", "action": "kill",
                    "reason": "KillUserProcesses=yes"}


def test_leftovers_survive_a_restart() -> None:
    core = make_core(Config(kill_user_processes=KillMode.PERMISSIVE))
    session, leader, nohup, _ = _session_with_leftovers(core)
    core.world.exit(leader.pid)
    manager = core.restart()
    assert {r.pid for r in manager.leftovers.query(session=session.id)} >= {nohup.pid}
    assert manager.leftovers.query(uid=1001) == []


@pytest.mark.parametrize(("tty_nr", "name"), [(0, ""), (34816, "pts/0"), (34821, "pts/5"),
                                               (35072, "pts/256"), (1025, "tty1"), (1088, "ttyS0")])
def test_tty_name(tty_nr: int, name: str) -> None:
    assert tty_name(tty_nr) == name


def test_escape_reasons_of_a_plain_child_are_empty() -> None:
    info = ProcessInfo(pid=10, ppid=9, uid=1000, comm="vim", cmdline="vim", sid=9, tty_nr=34816)
    assert escape_reasons(info) == ()
    reparented = ProcessInfo(pid=10, ppid=1, uid=1000, comm="x", cmdline="x", sid=9, tty_nr=34816)
    assert escape_reasons(reparented) == ("daemonized: its parent exited (reparented)",)


def test_recording_is_bounded_per_session(caplog: pytest.LogCaptureFixture) -> None:
    """A scope with more processes than RECORD_MAX_PER_SESSION: only that many /proc reads."""
    core = make_core(Config(kill_user_processes=KillMode.PERMISSIVE))
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    for _ in range(RECORD_MAX_PER_SESSION + 5):
        core.world.spawn(cgroup=leader.cgroup)
    described: list[int] = []
    describe = core.processes.describe

    def counting(pid: int):  # type: ignore[no-untyped-def]
        described.append(pid)
        return describe(pid)

    core.processes.describe = counting  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, "logoutd"):
        core.world.exit(leader.pid)
    assert len(described) == RECORD_MAX_PER_SESSION
    assert len(core.manager.leftovers.query(session=session.id)) == RECORD_MAX_PER_SESSION
    assert f"recording the first {RECORD_MAX_PER_SESSION} only" in caplog.text
