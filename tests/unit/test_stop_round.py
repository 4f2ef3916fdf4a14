"""One stop round (core/stopround.py) for sessions, users and units: the drift between the three
copies it replaced is gone, and the deliberate differences stay."""

from __future__ import annotations

import signal

from logoutd.config.model import Config
from logoutd.core.request import SessionRequest
from logoutd.core.unit import Unit
from tests.fakes import FakeProcess
from tests.unit.conftest import Core, make_core


def login(core: Core) -> tuple[str, FakeProcess]:
    """A session of alice; its id and a shell of hers inside it."""
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    return session.id, core.world.spawn(uid=1000, cgroup=leader.cgroup)


def stubborn_unit(core: Core) -> tuple[Unit, FakeProcess]:
    """A scope unit of alice holding one process that ignores SIGTERM."""
    _, shell = login(core)
    shell.ignores.add(signal.SIGTERM)
    return core.manager.units.start_scope(1000, shell.pid, "kept"), shell


def unkillable(core: Core) -> None:
    """cgroup.kill that leaves the processes (in D state, say) for a while."""
    core.cgroups.kill = core.cgroups.kills.append  # type: ignore[method-assign]


def test_a_units_round_is_audited_and_saved_as_a_sessions() -> None:
    core = make_core(Config(user_stop_timeout_sec=3))
    unit, _ = stubborn_unit(core)
    assert unit.stop() == 1
    assert core.audit.events("signalled") == [
        {"user": "alice", "unit": "kept.scope", "signals": ["SIGTERM", "SIGCONT"], "count": 1}]
    saved = core.store.data[("units", unit.key)]
    assert saved["term_sent"] and not saved["sigkill_sent"]
    core.clock.advance(3.1)
    assert core.cgroups.kills == [unit.cgroup] and unit.finalized
    assert core.audit.events("signalled")[-1] == {
        "user": "alice", "unit": "kept.scope", "signals": ["SIGKILL"], "count": 1}


def test_a_units_sigkill_is_sent_once_across_a_restart() -> None:
    core = make_core(Config(user_stop_timeout_sec=3))
    unit, _ = stubborn_unit(core)
    unkillable(core)
    unit.stop()
    core.clock.advance(3.1)
    assert core.cgroups.kills == [unit.cgroup]
    assert core.store.data[("units", unit.key)]["sigkill_sent"]
    core.restart()
    core.clock.advance(10)
    assert core.cgroups.kills == [unit.cgroup]  # not re-armed by the restart


def test_a_users_sigkill_is_sent_once_across_a_restart() -> None:
    core = make_core(Config(user_stop_timeout_sec=3))
    _, proc = stubborn_unit(core)
    user = core.manager.users[1000]
    unkillable(core)
    core.manager.terminate_user(user)
    core.clock.advance(3.1)
    assert core.cgroups.kills.count(user.service) == 1
    core.restart()
    core.clock.advance(10)
    assert core.cgroups.kills.count(user.service) == 1 and proc.alive


def test_a_user_saves_its_stop_once() -> None:
    core = make_core(Config(user_stop_timeout_sec=3))
    stubborn_unit(core)
    user = core.manager.users[1000]
    core.store.writes.clear()
    user.stop(force=False)
    assert core.store.writes.count(("users", "1000")) == 1
    saved = core.store.data[("users", "1000")]
    assert saved["stopping"] and saved["term_sent"] and saved["sigkill_at"] is not None


def test_a_user_does_not_kill_a_service_that_emptied_before_the_deadline() -> None:
    """The deadline kills what is populated (as for sessions and units), not what exists."""
    core = make_core(Config(user_stop_timeout_sec=3, session_stop_timeout_sec=10))
    session_id, _ = login(core)
    scope = core.manager.sessions[session_id].scope
    core.world.spawn(cgroup=core.world.abs(scope), ignores=[signal.SIGTERM, signal.SIGHUP])
    _, proc = stubborn_unit(core)
    user = core.manager.users[1000]
    core.manager.terminate_user(user)
    core.world.exit(proc.pid)  # the unit's process ends on its own
    core.clock.advance(3.1)
    assert user.service not in core.cgroups.kills and not user.finalized


def test_a_user_record_of_an_older_logoutd_still_kills_at_its_deadline() -> None:
    """Users and units once saved only sigkill_at, with the round: it means the round was sent."""
    core = make_core(Config(user_stop_timeout_sec=3))
    _, proc = stubborn_unit(core)
    user = core.manager.users[1000]
    core.manager.terminate_user(user)
    record = core.store.data[("users", "1000")]
    del record["term_sent"], record["sigkill_sent"]
    core.restart()
    core.clock.advance(3.1)
    assert user.service in core.cgroups.kills and not proc.alive


def test_the_deliberate_differences() -> None:
    """Sessions add SIGHUP and wait SessionStopTimeoutSec=; users and units UserStopTimeoutSec=."""
    core = make_core(Config(session_stop_timeout_sec=7, user_stop_timeout_sec=3))
    session_id, _ = login(core)
    session = core.manager.sessions[session_id]
    unit, _ = stubborn_unit(core)
    now = core.clock.now()
    core.manager.terminate_session(session)
    unit.stop()
    assert session.round.signals == (signal.SIGTERM, signal.SIGCONT, signal.SIGHUP)
    assert unit.round.signals == core.manager.users[1000].round.signals == (
        signal.SIGTERM, signal.SIGCONT)
    assert (session.round.sigkill_at, unit.round.sigkill_at) == (now + 7, now + 3)
