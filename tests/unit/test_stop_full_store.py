"""A state filesystem that is full at logout (issue 11): the kill goes on, the save is retried."""

from __future__ import annotations

import logging
import signal

import pytest

from logoutd.config.model import Config
from logoutd.core.checkpoint import SAVE_RETRY_SEC
from logoutd.core.request import SessionRequest
from logoutd.core.unit import UnitState
from tests.unit.conftest import Core, make_core


def open_session(core: Core, uid: int = 1000):  # type: ignore[no-untyped-def]
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=uid, leader=leader.pid))
    return session, leader


def test_logout_kills_although_the_state_cannot_be_saved(
        caplog: pytest.LogCaptureFixture) -> None:
    core = make_core(Config(session_stop_timeout_sec=5, user_stop_delay_sec=60))
    session, leader = open_session(core)
    nohup = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    core.store.full = True
    with caplog.at_level(logging.ERROR, "logoutd"):
        core.world.exit(leader.pid)
    assert not nohup.alive and (nohup.pid, signal.SIGTERM) in core.cgroups.signals
    assert ("sessions", session.id) in core.store.failed
    errors = [r.getMessage() for r in caplog.records
              if r.levelno == logging.ERROR and "cannot save" in r.getMessage()]
    assert len(errors) == 1, errors  # once per failure streak, not per save
    assert f"Session {session.id}: cannot save its state" in errors[0]
    assert "No space left on device" in errors[0]
    # Empty, so finalized: its state file is removed (unlink needs no space) and no retry is left.
    assert session.finalized and ("sessions", session.id) not in core.store.data
    assert "save-retry" not in session.timers


def test_stubborn_process_is_sigkilled_at_the_deadline_while_saves_fail() -> None:
    core = make_core(Config(session_stop_timeout_sec=5, user_stop_delay_sec=60))
    session, leader = open_session(core)
    stubborn = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.store.full = True
    core.world.exit(leader.pid)
    assert stubborn.alive and session.term_sent and "save-retry" in session.timers
    core.clock.advance(5.1)
    assert not stubborn.alive and core.cgroups.kills == [session.scope]
    assert session.finalized and "c1" not in core.manager.sessions


def test_failed_save_is_retried_until_it_succeeds(caplog: pytest.LogCaptureFixture) -> None:
    core = make_core(Config(session_stop_timeout_sec=60, user_stop_delay_sec=600))
    session, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.store.full = True
    core.world.exit(leader.pid)
    failed = len(core.store.failed)
    core.clock.advance(SAVE_RETRY_SEC * 3 + 0.1)
    assert len(core.store.failed) == failed + 3  # one retry per period, still failing
    core.store.full = False
    with caplog.at_level(logging.INFO, "logoutd"):
        core.clock.advance(SAVE_RETRY_SEC)
    saved = core.store.data[("sessions", session.id)]
    assert saved["stopping"] and saved["term_sent"] and saved["sigkill_at"] is not None
    assert f"Session {session.id}: state saved again." in caplog.text
    assert "save-retry" not in session.timers
    writes = len(core.store.writes)
    core.clock.advance(SAVE_RETRY_SEC * 4)
    assert len(core.store.writes) == writes  # no more retries once saved


def test_a_restart_after_a_failed_stop_save_still_kills() -> None:
    """The failed save left the session 'active' on disk; after a restart the leader is gone
    and the stop runs again: what is left is killed."""
    core = make_core(Config(session_stop_timeout_sec=5, user_stop_delay_sec=60))
    session, leader = open_session(core)
    stubborn = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.store.full = True
    core.world.exit(leader.pid)
    assert not core.store.data[("sessions", session.id)]["stopping"]
    core.store.full = False
    manager = core.restart()
    again = manager.sessions[session.id]
    assert again.stopping and again.term_sent
    core.clock.advance(5.1)
    assert not stubborn.alive


def test_stop_unit_kills_although_the_state_cannot_be_saved() -> None:
    core = make_core(Config(user_stop_timeout_sec=3))
    _, leader = open_session(core)
    shell = core.world.spawn(uid=1000, cgroup=leader.cgroup)
    stubborn = core.world.spawn(uid=1000, cgroup=leader.cgroup, ignores=[signal.SIGTERM])
    unit = core.manager.units.start_scope(1000, shell.pid, None)
    core.cgroups.move(unit.cgroup, stubborn.pid)
    core.store.full = True
    assert unit.stop() == 2
    assert not shell.alive and stubborn.alive and unit.state is UnitState.STOPPING
    assert ("units", unit.key) in core.store.failed
    core.clock.advance(3.1)
    assert not stubborn.alive and core.cgroups.kills == [unit.cgroup] and unit.finalized


def test_user_stop_kills_its_units_although_the_state_cannot_be_saved() -> None:
    core = make_core(Config(user_stop_delay_sec=1, user_stop_timeout_sec=5))
    session, leader = open_session(core)
    shell = core.world.spawn(uid=1000, cgroup=leader.cgroup)
    stubborn = core.world.spawn(uid=1000, cgroup=leader.cgroup, ignores=[signal.SIGTERM])
    kept = core.manager.units.start_scope(1000, shell.pid, "kept")
    core.cgroups.move(kept.cgroup, stubborn.pid)
    core.world.exit(leader.pid)
    assert session.finalized
    core.store.full = True
    core.clock.advance(1.1)
    user = core.manager.users[1000]
    assert user.stopping and not shell.alive and stubborn.alive
    assert ("users", "1000") in core.store.failed and ("units", kept.key) in core.store.failed
    core.clock.advance(5.1)
    assert not stubborn.alive and user.finalized and 1000 not in core.manager.users


def test_leftovers_file_that_cannot_be_written_does_not_stop_the_kill() -> None:
    core = make_core(Config(session_stop_timeout_sec=5))  # FakeAudit is detailed: records
    session, leader = open_session(core)
    nohup = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    core.store.full = True
    core.world.exit(leader.pid)
    assert not nohup.alive and session.finalized
    assert [r.pid for r in core.manager.leftovers.query(session=session.id)] == [nohup.pid]
