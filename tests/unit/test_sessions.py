"""Session and user lifecycles on the pure core (fakes only, no root)."""

from __future__ import annotations

import signal
from typing import Any

import pytest

from logoutd.config.model import Config, KillMode
from logoutd.core.request import SessionRequest
from logoutd.core.sessions import SessionState, StopCause, is_remote_host
from logoutd.core.users import UserState
from logoutd.errors import InvalidArgument, LimitsExceeded, NoSuchUser, ProcessGone, SessionBusy
from tests.fakes import FakeProcess
from tests.unit.conftest import Core, make_core


def open_session(core: Core, uid: int = 1000, **kw: object):  # type: ignore[no-untyped-def]
    leader = core.world.spawn(uid=0, **kw)  # type: ignore[arg-type]
    session = core.manager.create_session(SessionRequest(uid=uid, leader=leader.pid, service="sshd"))
    return session, leader


def test_create_moves_leader_and_starts_user(core: Core) -> None:
    session, leader = open_session(core)
    assert session.id == "c1"
    assert leader.cgroup == "/logoutd-test/user.slice/user-1000.slice/session-c1.scope"
    assert session.state is SessionState.ACTIVE
    assert core.manager.get_user(1000).state is UserState.ACTIVE
    assert 1000 in core.userfiles.runtime_dirs
    assert core.store.data[("sessions", "c1")]["leader_pid"] == leader.pid


def test_audit_session_id_used_when_unused(core: Core) -> None:
    first, _ = open_session(core, sessionid=42)
    second, _ = open_session(core, sessionid=42)
    assert (first.id, second.id) == ("42", "c1")


def test_logout_kills_everything_in_the_scope(core: Core) -> None:
    session, leader = open_session(core)
    nohup = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    daemon = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    core.world.exit(leader.pid)
    assert not nohup.alive and not daemon.alive
    assert (nohup.pid, signal.SIGTERM) in core.cgroups.signals
    assert session.stop_cause is StopCause.LEADER_EXIT
    assert "c1" not in core.manager.sessions
    assert ("sessions", "c1") not in core.store.data


def test_sigterm_ignorer_gets_sigkill_after_stop_timeout() -> None:
    core = make_core(Config(session_stop_timeout_sec=5))
    session, leader = open_session(core)
    stubborn = core.world.spawn(cgroup=leader.cgroup,
                                ignores=[signal.SIGTERM, signal.SIGHUP])
    core.world.exit(leader.pid)
    assert stubborn.alive and session.state is SessionState.CLOSING
    core.clock.advance(4.9)
    assert stubborn.alive and not core.cgroups.kills
    core.clock.advance(0.2)
    assert not stubborn.alive
    assert core.cgroups.kills == [session.scope]
    assert "c1" not in core.manager.sessions


def test_logout_writes_the_session_state_once_before_the_signals() -> None:
    """A leader's exit: the decision and the SIGTERM round with its deadline are saved together,
    once, before the first signal (a restart finds the exit again); then the kill record."""
    core = make_core(Config(session_stop_timeout_sec=5))
    session, leader = open_session(core)
    stubborn = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.store.writes.clear()
    saved_before_signal = []
    send = core.cgroups.signal_all

    def spy(*args: Any, **kwargs: Any) -> int:
        saved_before_signal.append(list(core.store.writes))
        return send(*args, **kwargs)

    core.cgroups.signal_all = spy  # type: ignore[method-assign]
    core.world.exit(leader.pid)
    assert saved_before_signal == [[("sessions", session.id)]]
    assert (stubborn.pid, signal.SIGTERM) in core.cgroups.signals
    # and the kill record, once (the next login's notice)
    assert core.store.writes == [("sessions", session.id), ("notice", "1000"), ("kills", "1000")]
    saved = core.store.data[("sessions", session.id)]
    assert saved["term_sent"] and saved["sigkill_at"] == core.clock.now() + 5
    assert saved["action"] == "kill"


def test_a_crash_before_the_one_save_of_a_logout_is_stopped_at_restart() -> None:
    """Nothing is saved between the leader's exit and its round: a daemon killed there restarts
    with the session active and its leader gone, and stops it then, with one SIGTERM each."""
    core = make_core(Config(session_stop_timeout_sec=5))
    session, leader = open_session(core)
    job = core.world.spawn(cgroup=leader.cgroup)
    core.world.exit_watchers.clear()  # the daemon is down: nobody sees the exit
    core.world.exit(leader.pid)
    assert core.store.data[("sessions", session.id)]["term_sent"] is False
    core.restart()
    assert not job.alive
    assert core.cgroups.signals.count((job.pid, signal.SIGTERM)) == 1
    assert "c1" not in core.manager.sessions


def test_terminate_saves_its_decision_before_the_round() -> None:
    """A forced stop cannot be found again after a restart: its decision is saved first."""
    core = make_core(Config(session_stop_timeout_sec=5))
    session, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.store.writes.clear()
    states = []
    save = core.store.save

    def spy(kind: str, key: str, record: dict[str, Any]) -> None:
        states.append((kind, record.get("stopping"), record.get("term_sent")))
        save(kind, key, record)

    core.store.save = spy  # type: ignore[method-assign]
    core.manager.terminate_session(session)
    assert states[:2] == [("sessions", True, False), ("sessions", True, True)]


def test_leader_exit_of_a_stopping_session_is_saved() -> None:
    core = make_core(Config(kill_user_processes=KillMode.NO, release_timeout_sec=1))
    session, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup)
    session.release()
    core.clock.advance(2)
    assert session.stopping and leader.alive
    core.store.writes.clear()
    core.world.exit(leader.pid)
    assert core.store.writes == [("sessions", session.id)]
    assert core.store.data[("sessions", session.id)]["leader_start"] is None


def test_forced_stop_after_unforced_one_writes_once() -> None:
    core = make_core(Config(kill_user_processes=KillMode.NO))
    session, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.world.exit(leader.pid)
    core.store.writes.clear()
    core.manager.terminate_session(session)
    assert core.store.writes == [("sessions", session.id), ("notice", "1000"), ("kills", "1000")]
    saved = core.store.data[("sessions", session.id)]
    assert saved["action"] == "kill" and saved["term_sent"]


def test_kill_user_processes_no_leaves_session_closing_until_empty() -> None:
    core = make_core(Config(kill_user_processes=KillMode.NO))
    session, leader = open_session(core)
    job = core.world.spawn(cgroup=leader.cgroup)
    core.world.exit(leader.pid)
    assert job.alive and not core.cgroups.signals
    assert session.state is SessionState.CLOSING
    assert core.manager.get_user(1000).state is UserState.CLOSING
    core.world.exit(job.pid)
    assert "c1" not in core.manager.sessions


def test_permissive_records_and_kills_nothing() -> None:
    core = make_core(Config(kill_user_processes=KillMode.PERMISSIVE))
    session, leader = open_session(core)
    job = core.world.spawn(cgroup=leader.cgroup)
    core.world.exit(leader.pid)
    assert job.alive and not core.cgroups.signals and not core.cgroups.kills
    assert session.decision is not None and "permissive" in session.decision.reason


def test_root_is_exempt_by_default(core: Core) -> None:
    session, leader = open_session(core, uid=0)
    job = core.world.spawn(uid=0, cgroup=leader.cgroup)
    core.world.exit(leader.pid)
    assert job.alive and session.state is SessionState.CLOSING


def test_release_then_leader_outlives_timeout() -> None:
    core = make_core(Config(release_timeout_sec=20))
    session, leader = open_session(core)
    session.release()
    assert session.state is SessionState.CLOSING and not session.stopping
    core.clock.advance(19)
    assert not session.stopping
    core.clock.advance(2)
    assert session.stop_cause is StopCause.RELEASE_TIMEOUT
    assert not leader.alive  # the leader was in the scope and got SIGTERM


def test_release_then_leader_exit_has_no_window(core: Core) -> None:
    """elogind's race: release and leader exit back to back must still kill."""
    session, leader = open_session(core)
    job = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    session.release()
    core.world.exit(leader.pid)
    assert not job.alive
    assert session.stop_cause is StopCause.LEADER_EXIT


def test_terminate_is_forced_even_when_excluded() -> None:
    core = make_core(Config(kill_exclude_users=("alice",)))
    session, leader = open_session(core)
    job = core.world.spawn(cgroup=leader.cgroup)
    core.manager.terminate_session(session)
    assert not job.alive and not leader.alive
    assert session.stop_cause is StopCause.TERMINATE


def test_terminate_after_unforced_stop_upgrades_to_kill() -> None:
    core = make_core(Config(kill_user_processes=KillMode.NO))
    session, leader = open_session(core)
    job = core.world.spawn(cgroup=leader.cgroup)
    core.world.exit(leader.pid)
    assert job.alive
    core.manager.terminate_session(session)
    assert not job.alive and "c1" not in core.manager.sessions


def test_scope_emptied_on_its_own() -> None:
    core = make_core()
    session, leader = open_session(core)
    # The leader left the scope (moved elsewhere) and nothing else is in it.
    leader.cgroup = "/elsewhere"
    core.world.empty_watchers[session.scope]()
    assert session.stop_cause is StopCause.SCOPE_EMPTY
    assert "c1" not in core.manager.sessions and leader.alive


def test_idle_timer_stops_idle_tty_session() -> None:
    core = make_core(Config(stop_idle_session_sec=60, idle_action_sec=1800))
    core.processes.tty_atimes = {"pts/1": core.clock.now()}  # type: ignore[attr-defined]
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid, tty="pts/1"))
    core.clock.advance(61)
    assert session.stop_cause is StopCause.IDLE
    assert not leader.alive


def test_idle_timer_ignores_sessions_without_tty() -> None:
    core = make_core(Config(stop_idle_session_sec=60))
    session, _ = open_session(core)
    core.clock.advance(600)
    assert not session.stopping


def test_user_stops_after_delay_and_is_cleaned_up() -> None:
    core = make_core(Config(user_stop_delay_sec=10))
    _, leader = open_session(core)
    core.world.exit(leader.pid)
    user = core.manager.users[1000]
    assert user.state is UserState.CLOSING and not user.finalized
    core.clock.advance(9)
    assert not user.finalized
    core.clock.advance(2)
    assert user.finalized and 1000 not in core.manager.users
    assert 1000 not in core.userfiles.runtime_dirs
    assert core.userfiles.ipc_removed == [1000]
    assert "user.slice/user-1000.slice" not in core.world.dirs


def test_new_session_cancels_user_stop() -> None:
    core = make_core(Config(user_stop_delay_sec=10))
    _, leader = open_session(core)
    core.world.exit(leader.pid)
    core.clock.advance(5)
    open_session(core)
    core.clock.advance(60)
    assert core.manager.get_user(1000).state is UserState.ACTIVE


def test_lingering_user_is_not_stopped() -> None:
    core = make_core(Config(user_stop_delay_sec=1))
    core.userfiles.linger.add("alice")
    _, leader = open_session(core)
    core.world.exit(leader.pid)
    core.clock.advance(10)
    assert core.manager.get_user(1000).state is UserState.LINGERING


def test_terminate_user_kills_units_and_sessions() -> None:
    core = make_core(Config(user_stop_timeout_sec=3))
    _session, leader = open_session(core)
    user = core.manager.users[1000]
    core.cgroups.create(user.service + "/app.slice/run-u1.scope")
    unit = core.world.spawn(cgroup=core.world.abs(user.service + "/app.slice/run-u1.scope"),
                            ignores=[signal.SIGTERM])
    core.manager.terminate_user(user)
    assert not leader.alive and unit.alive
    core.clock.advance(3.1)
    assert not unit.alive and user.finalized


def test_busy_when_leader_already_in_a_user_slice(core: Core) -> None:
    _, leader = open_session(core)
    inner = core.world.spawn(uid=1000, cgroup=leader.cgroup)
    with pytest.raises(SessionBusy):
        core.manager.create_session(SessionRequest(uid=1001, leader=inner.pid))
    assert len(core.manager.sessions) == 1


def test_bad_requests_change_nothing(core: Core) -> None:
    leader = core.world.spawn(uid=0)
    with pytest.raises(NoSuchUser):
        core.manager.create_session(SessionRequest(uid=4242, leader=leader.pid))
    with pytest.raises(ProcessGone):
        core.manager.create_session(SessionRequest(uid=1000, leader=99999))
    with pytest.raises(InvalidArgument):
        core.manager.create_session(SessionRequest(uid=1000, leader=1))
    with pytest.raises(InvalidArgument):
        core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid, type="bogus"))
    assert not core.manager.sessions and not core.store.data and not core.processes.pinned


def test_sessions_max() -> None:
    core = make_core(Config(sessions_max=2))
    open_session(core)
    open_session(core)
    with pytest.raises(LimitsExceeded, match="Maximum number of sessions"):
        open_session(core)
    assert len(core.manager.sessions) == 2


def test_restart_keeps_sessions_and_still_cleans_up(core: Core) -> None:
    _session, leader = open_session(core)
    job = core.world.spawn(cgroup=leader.cgroup)
    manager = core.restart()
    assert list(manager.sessions) == ["c1"]
    core.world.exit(leader.pid)
    assert not job.alive and not manager.sessions


def test_leader_died_while_daemon_was_down(core: Core) -> None:
    _, leader = open_session(core)
    job = core.world.spawn(cgroup=leader.cgroup)
    core.world.exit(leader.pid, notify=False)
    manager = core.restart()
    assert not job.alive and not manager.sessions


def test_restart_finishes_pending_sigkill() -> None:
    core = make_core(Config(session_stop_timeout_sec=10))
    _, leader = open_session(core)
    stubborn = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.world.exit(leader.pid)
    core.clock.advance(4)
    core.restart()
    signals_before = len(core.cgroups.signals)
    core.clock.advance(5)
    assert stubborn.alive
    core.clock.advance(2)
    assert not stubborn.alive
    assert len(core.cgroups.signals) == signals_before  # no second SIGTERM round after restart


def test_counter_ids_survive_restart(core: Core) -> None:
    open_session(core)
    core.restart()
    session, _ = open_session(core)
    assert session.id != "c1"


def test_infinite_stop_timeout_never_sigkills() -> None:
    core = make_core(Config(session_stop_timeout_sec=float("inf"), release_timeout_sec=float("inf")))
    session, leader = open_session(core)
    stubborn = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    session.release()
    core.clock.advance(10**9)
    assert not session.stopping
    core.world.exit(leader.pid)
    core.clock.advance(10**9)
    assert stubborn.alive and not core.cgroups.kills and core.clock.pending() == 0


def test_linger_starts_user_and_keeps_it(core: Core) -> None:
    core.manager.set_linger(1000, True)
    user = core.manager.get_user(1000)
    assert "alice" in core.userfiles.linger and user.state is UserState.LINGERING
    _, leader = open_session(core)
    core.world.exit(leader.pid)
    core.clock.advance(3600)
    assert not user.finalized
    core.manager.set_linger(1000, False)
    core.clock.advance(11)
    assert user.finalized and "alice" not in core.userfiles.linger


def test_linger_unknown_uid(core: Core) -> None:
    with pytest.raises(NoSuchUser):
        core.manager.set_linger(4242, True)
    assert not core.userfiles.linger


def test_lookup_by_pid_only_below_the_managed_root(core: Core) -> None:
    session, leader = open_session(core)
    inside = core.world.spawn(uid=1000, cgroup=leader.cgroup)
    assert core.manager.session_by_pid(inside.pid) is session
    assert core.manager.user_by_pid(inside.pid) is session.user
    # The same names in another tree (systemd's own user.slice beside a delegated subtree).
    foreign = core.world.spawn(uid=1000, cgroup=f"/user.slice/user-1000.slice/session-{session.id}.scope")
    assert core.manager.session_by_pid(foreign.pid) is None
    assert core.manager.user_by_pid(foreign.pid) is None


@pytest.mark.parametrize(("host", "remote"), [
    ("", False), ("localhost", False), ("LOCALHOST.", False), ("localhost.localdomain", False),
    ("localhost6", False), ("foo.localhost", False), ("foo.localhost.", False),
    ("127.0.0.1", True), ("10.0.0.9", True), ("example.org", True), ("localhostx", True),
])
def test_remote_host_rule_is_pam_systemds(host: str, remote: bool) -> None:
    """One rule for `show-session`'s Remote= and the D-Bus Remote property."""
    assert is_remote_host(host) is remote


# Above the kernel's pid_max: an os.kill on the bare pid can never reach a real process.
_FAKE_PID = 4_000_000


def test_kill_leader_signals_through_the_pinned_process(core: Core) -> None:
    leader = FakeProcess(_FAKE_PID, uid=0, cgroup=core.world.root_in_mount)
    core.world.procs[leader.pid] = leader
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    assert session.kill("leader", signal.SIGUSR1) == 1
    assert leader.received == [signal.SIGUSR1]


def test_kill_leader_never_signals_a_reused_pid(core: Core) -> None:
    leader = FakeProcess(_FAKE_PID, uid=0, cgroup=core.world.root_in_mount)
    core.world.procs[leader.pid] = leader
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    core.world.exit(leader.pid, notify=False)  # the exit is not seen yet: the pid is reused
    reused = FakeProcess(_FAKE_PID, uid=1000, cgroup=leader.cgroup, start_time=2)
    core.world.procs[reused.pid] = reused
    with pytest.raises(ProcessGone):
        session.kill("leader", signal.SIGTERM)
    assert reused.received == [] and reused.alive


def test_sighup_comes_in_a_second_pass_to_what_sigterm_left() -> None:
    """As PID 1 stops a scope: SIGTERM+SIGCONT to all, then SIGHUP to those still there only."""
    core = make_core(Config(session_stop_timeout_sec=5))
    session, leader = open_session(core)
    gone = core.world.spawn(cgroup=leader.cgroup)
    assert session.id == "c1"
    a = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM])
    b = core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM])
    core.cgroups.signals.clear()
    core.world.exit(leader.pid)
    assert gone.received == [signal.SIGTERM]  # exited at once: no SIGCONT, no SIGHUP
    term, cont, hup = signal.SIGTERM, signal.SIGCONT, signal.SIGHUP
    assert core.cgroups.signals == [(gone.pid, term), (a.pid, term), (a.pid, cont),
                                    (b.pid, term), (b.pid, cont), (a.pid, hup), (b.pid, hup)]
    assert not a.alive and not b.alive and not core.cgroups.kills  # before the stop timeout
    assert "c1" not in core.manager.sessions
