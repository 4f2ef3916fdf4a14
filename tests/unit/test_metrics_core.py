"""What the core tells its Metrics port (the counters behind --metrics-listen): fakes only."""

from __future__ import annotations

import signal

import pytest

from logoutd.config.model import Config, KillMode
from logoutd.core.ports import NoMetrics
from logoutd.core.request import SessionRequest
from logoutd.core.sessions import Session
from logoutd.errors import AccessDenied
from tests.fakes import FakeAudit, FakeMetrics, FakeProcess
from tests.unit.conftest import Core, make_core
from tests.unit.test_adopt import hook_session
from tests.unit.test_units import login, with_spawner


def metered(config: Config | None = None) -> tuple[Core, FakeMetrics]:
    core = make_core(config)
    metrics = FakeMetrics()
    core.ports.metrics = metrics  # the manager's context shares this Ports
    return core, metrics


def open_session(core: Core, uid: int = 1000) -> tuple[Session, FakeProcess]:
    leader = core.world.spawn(uid=0)
    return core.manager.create_session(SessionRequest(uid=uid, leader=leader.pid)), leader


def test_the_default_port_counts_nothing() -> None:
    core = make_core()
    assert isinstance(core.ports.metrics, NoMetrics)
    _, leader = open_session(core)
    core.world.exit(leader.pid)  # every call site runs against the no-op


def test_sessions_started_by_the_api_and_adopted_from_the_hook() -> None:
    core, metrics = metered()
    open_session(core)
    open_session(core, 1001)
    hook_session(core)
    core.manager.adopt_hook_records()
    assert metrics.of("session_new") == [("api",), ("api",), ("hook",)]


def test_an_existing_session_or_a_restart_is_no_new_session() -> None:
    core, metrics = metered()
    session, leader = open_session(core)
    again, existed = core.manager.open_session(SessionRequest(uid=1000, leader=leader.pid))
    assert again is session and existed
    core.restart()
    assert metrics.of("session_new") == [("api",)]


def test_a_logout_that_kills_counts_the_stop_and_the_signalled_processes() -> None:
    core, metrics = metered()
    _, leader = open_session(core)
    for _ in range(3):
        core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    core.world.exit(leader.pid)
    assert metrics.of("session_stopped") == [("leader-exit", "kill")]
    assert metrics.of("processes_signalled") == [("session", 3)]
    assert metrics.of("stop_timed_out") == []  # they all died of the SIGTERM round


def test_terminate_counts_as_its_cause() -> None:
    core, metrics = metered()
    session, _ = open_session(core)
    core.manager.terminate_session(session)
    assert metrics.of("session_stopped") == [("terminate", "kill")]
    assert metrics.of("processes_signalled") == [("session", 1)]


def test_the_stop_timeout_counts_what_it_killed() -> None:
    core, metrics = metered(Config(session_stop_timeout_sec=5))
    core.ports.audit = FakeAudit(detailed=False)  # counted for the metrics alone
    _, leader = open_session(core)
    for _ in range(2):
        core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.world.exit(leader.pid)
    core.clock.advance(5.1)
    assert metrics.of("processes_signalled") == [("session", 2)]
    assert metrics.of("stop_timed_out") == [("session", 2)]


def test_without_a_detailed_audit_a_timeout_is_still_counted() -> None:
    core, metrics = metered(Config(session_stop_timeout_sec=5))
    core.ports.audit = FakeAudit(detailed=False)
    _, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.world.exit(leader.pid)
    core.clock.advance(5.1)
    assert metrics.of("stop_timed_out") == [("session", 1)]


def test_permissive_counts_leftovers_by_program() -> None:
    core, metrics = metered(Config(kill_user_processes=KillMode.PERMISSIVE))
    _, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup)
    core.world.spawn(cgroup=leader.cgroup)
    core.world.exit(leader.pid)
    assert metrics.of("session_stopped") == [("leader-exit", "record")]
    assert metrics.of("leftovers_recorded") == [("sleep", "sleep")]  # the fakes' comm
    assert metrics.of("processes_signalled") == []


def test_a_kill_recorded_for_the_audit_log_is_no_leftover() -> None:
    """KillUserProcesses=yes with an audit log records what it kills: not a permissive leftover."""
    core, metrics = metered()
    _, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup)
    core.world.exit(leader.pid)
    assert core.manager.leftovers.query() and metrics.of("leftovers_recorded") == []


def test_no_kill_counts_an_abandoned_stop() -> None:
    core, metrics = metered(Config(kill_user_processes=KillMode.NO))
    _, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup)
    core.world.exit(leader.pid)
    assert metrics.of("session_stopped") == [("leader-exit", "wait")]


def test_keep_requests_allowed_and_denied() -> None:
    core, metrics = metered(Config(keep_allow_users=("bob",)))
    with_spawner(core)
    _, shell = login(core)
    _, bobs = login(core, 1001)
    with pytest.raises(AccessDenied):
        core.manager.units.start_scope(1000, shell.pid, None)
    core.manager.units.start_scope(1001, bobs.pid, None)
    assert metrics.of("keep_requested") == [("unit", False), ("unit", True)]


def test_autokeep_requests_allowed_and_denied() -> None:
    for config, allowed in ((Config(auto_keep=("/usr/bin/sleep",)), True),
                            (Config(auto_keep=("/usr/bin/sleep",), keep_allow_users=("bob",)), False)):
        core, metrics = metered(config)
        _, leader = open_session(core)
        core.world.spawn(cgroup=leader.cgroup)  # /usr/bin/sleep, the fakes' default
        core.world.exit(leader.pid)
        assert metrics.of("keep_requested") == [("autokeep", allowed)]


def test_a_user_stop_round_counts_as_the_user() -> None:
    core, metrics = metered()
    session, _ = open_session(core)
    unit = core.manager.units.start_scope(1000, core.world.spawn(
        uid=1000, cgroup=core.world.abs(session.scope)).pid, "job")
    core.manager.terminate_user(core.manager.users[1000])
    assert ("user", 1) in metrics.of("processes_signalled")
    assert unit.name == "job.scope"
