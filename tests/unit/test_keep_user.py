"""KeepUserWhileUnits= and KeepUserMaxSec= on the pure core: a user who holds units outlives the
last session until they end, the user stops them, or the limit; restarts and reloads agree."""

from __future__ import annotations

import dataclasses
import signal

import pytest

from logoutd.config.model import Config
from logoutd.core.request import SessionRequest
from logoutd.core.users import UserState
from tests.fakes import FakeProcess
from tests.unit.conftest import Core, make_core
from tests.unit.test_units import login, logout

ON = Config(user_stop_delay_sec=1, keep_user_while_units=True)


def restart(core: Core, config: Config | None = None) -> None:
    """A daemon restart: the old daemon's timers die with it."""
    for user in core.manager.users.values():
        user.timers.cancel_all()
    core.restart(config)


def kept(core: Core) -> tuple[str, FakeProcess]:
    """alice logged in, kept her shell in a scope, logged out; (the unit's name, the process)."""
    sid, shell = login(core)
    unit = core.manager.units.start_scope(1000, shell.pid, "tmux")
    logout(core, sid)
    assert sid not in core.manager.sessions
    return unit.name, shell


@pytest.mark.parametrize("on", [False, True])
def test_a_kept_unit_holds_the_user_only_with_the_option(on: bool) -> None:
    core = make_core(dataclasses.replace(ON, keep_user_while_units=on))
    _, shell = kept(core)
    core.clock.advance(60)
    assert shell.alive is on
    if on:
        user = core.manager.users[1000]
        assert user.state is UserState.LINGERING and user.held and not user.lingering
        assert core.audit.events("user-kept") == [{"user": "alice", "uid": 1000,
                                                   "units": ["tmux.scope"]}]
    else:
        assert 1000 not in core.manager.users


def test_the_user_stops_its_delay_after_the_last_unit_ends() -> None:
    core = make_core(ON)
    _, shell = kept(core)
    core.clock.advance(3600)
    user = core.manager.users[1000]
    core.world.exit(shell.pid)  # tmux ended by itself
    assert not user.units and not user.finalized and user.kept_since is None
    core.clock.advance(0.9)
    assert not user.stopping
    core.clock.advance(0.2)
    assert user.finalized and 1000 not in core.manager.users


def test_stopping_the_unit_ends_the_hold() -> None:
    core = make_core(ON)
    name, shell = kept(core)
    core.clock.advance(60)
    user = core.manager.users[1000]
    user.units[name].stop()
    assert not shell.alive and not user.units
    core.clock.advance(1.1)
    assert user.finalized


def test_the_limit_stops_the_user_counted_from_the_last_session() -> None:
    core = make_core(dataclasses.replace(ON, keep_user_max_sec=30))
    _, shell = kept(core)
    core.clock.advance(29.9)
    assert shell.alive
    core.clock.advance(0.2)
    assert not shell.alive and (shell.pid, signal.SIGTERM) in core.cgroups.signals
    assert 1000 not in core.manager.users
    assert core.audit.events("user-keep-expired") == [{"user": "alice", "uid": 1000,
                                                       "limit_sec": 30}]


def test_a_new_session_ends_the_hold_and_the_next_logout_starts_a_new_count() -> None:
    core = make_core(dataclasses.replace(ON, keep_user_max_sec=30))
    _, shell = kept(core)
    core.clock.advance(20)
    sid, _ = login(core)
    user = core.manager.users[1000]
    assert user.kept_since is None and core.store.data[("users", "1000")]["kept_since"] is None
    core.clock.advance(100)  # logged in: no limit
    assert shell.alive
    logout(core, sid)
    core.clock.advance(29.9)
    assert shell.alive
    core.clock.advance(0.2)
    assert not shell.alive


def test_a_restart_keeps_the_hold_and_its_deadline() -> None:
    core = make_core(dataclasses.replace(ON, keep_user_max_sec=100))
    _, shell = kept(core)
    since = core.manager.users[1000].kept_since
    assert core.store.data[("users", "1000")]["kept_since"] == since
    core.clock.advance(40)
    restart(core)
    manager = core.manager
    user = manager.users[1000]
    assert user.held and user.kept_since == since
    core.clock.advance(59.9)
    assert shell.alive
    core.clock.advance(0.2)
    assert not shell.alive and 1000 not in manager.users


def test_a_restart_with_the_option_off_stops_a_held_user_after_its_delay() -> None:
    core = make_core(ON)
    _, shell = kept(core)
    core.clock.advance(60)
    restart(core, dataclasses.replace(ON, keep_user_while_units=False))
    core.clock.advance(0.9)
    assert shell.alive
    core.clock.advance(0.2)
    assert not shell.alive


def test_reload_turning_it_on_holds_a_user_whose_delay_is_pending() -> None:
    core = make_core(dataclasses.replace(ON, user_stop_delay_sec=10, keep_user_while_units=False))
    _, shell = kept(core)
    core.clock.advance(5)
    core.manager.set_config(dataclasses.replace(ON, user_stop_delay_sec=10))
    core.clock.advance(60)
    assert shell.alive and core.manager.users[1000].held


def test_reload_turning_it_off_gives_held_users_the_stop_delay_from_then() -> None:
    core = make_core(ON)
    _, shell = kept(core)
    core.clock.advance(600)
    core.manager.set_config(dataclasses.replace(ON, keep_user_while_units=False))
    user = core.manager.users[1000]
    assert not user.held and user.kept_since is None and user.state is UserState.CLOSING
    core.clock.advance(0.9)
    assert shell.alive
    core.clock.advance(0.2)
    assert not shell.alive and user.finalized


def test_reload_with_a_limit_already_passed_stops_the_user() -> None:
    core = make_core(ON)
    _, shell = kept(core)
    core.clock.advance(600)
    core.manager.set_config(dataclasses.replace(ON, keep_user_max_sec=300))
    core.clock.advance(0)
    assert not shell.alive and 1000 not in core.manager.users


def test_a_unit_made_while_the_delay_ran_holds_the_user() -> None:
    core = make_core(dataclasses.replace(ON, user_stop_delay_sec=10))
    sid, _ = login(core)
    logout(core, sid)
    user = core.manager.users[1000]
    assert not user.held
    core.clock.advance(5)
    # root keeps a process of alice's that is in her slice but in no session
    stray = core.world.spawn(cgroup=core.world.abs("user.slice/user-1000.slice"))
    core.manager.units.start_scope(0, stray.pid, "late")
    core.clock.advance(60)
    assert stray.alive and user.held


def test_a_lingering_user_is_not_counted_as_held() -> None:
    core = make_core(ON)
    core.userfiles.set_linger("alice", True)
    _, shell = kept(core)
    core.clock.advance(60)
    user = core.manager.users[1000]
    assert shell.alive and not user.held and user.kept_since is None


def test_a_tree_autokept_at_logout_holds_the_user() -> None:
    core = make_core(dataclasses.replace(ON, auto_keep=("/usr/bin/sleep",)))
    leader = core.world.spawn(uid=0)
    core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    kept_proc = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    core.world.exit(leader.pid)
    core.clock.advance(60)
    user = core.manager.users[1000]
    assert kept_proc.alive and user.held and list(user.units) == [f"autokeep-{kept_proc.pid}.scope"]
