"""Sessions the PAM hook started while logoutd did not answer: adopted, then ended and killed
as any other (DESIGN §10). Pure core over fakes; the record format is the hook's own
(tests/unit/test_pam_hook.py checks that the parser accepts what the hook writes)."""

from __future__ import annotations

import logging
import signal
from typing import Any

import pytest

from logoutd.core.request import SessionRequest
from logoutd.core.sessions import Session, SessionState, StopCause
from logoutd.errors import SessionBusy
from tests.fakes import FakeProcess
from tests.unit.conftest import Core


def hook_session(core: Core, session_id: str = "h500", uid: int = 1000, *, moved: bool = True,
                 **fields: Any) -> tuple[FakeProcess, dict[str, Any]]:
    """What the hook leaves: the scope (mkdir), its record, the leader moved in (unless the hook
    died before the move)."""
    leader = core.world.spawn(uid=0)
    scope = f"user.slice/user-{uid}.slice/session-{session_id}.scope"
    core.cgroups.create(scope)
    record: dict[str, Any] = {
        "v": 1, "id": session_id, "scope": scope, "user": "alice", "uid": uid,
        "leader": leader.pid, "leader_start": leader.start_time, "service": "sshd", "type": "tty",
        "remote_host": "10.0.0.1", "timestamp": 999.5, "why": "no answer within 2 s", **fields,
    }
    core.store.data[("hook", session_id)] = record
    if moved:
        leader.cgroup = core.world.abs(scope)
    return leader, record


def test_good_record_becomes_a_normal_session_that_kills_at_logout(core: Core) -> None:
    leader, record = hook_session(core)
    job = core.world.spawn(uid=1000, cgroup=leader.cgroup, ignores=[signal.SIGHUP])  # nohup
    [session] = core.manager.adopt_hook_records()
    assert (session.id, session.scope, session.leader_pid) == ("h500", record["scope"], leader.pid)
    assert session.state is SessionState.ACTIVE and session.leader is not None
    assert (session.service, session.type, session.class_, session.remote_host, session.timestamp) \
        == ("sshd", "tty", "user", "10.0.0.1", 999.5)
    assert core.manager.session_by_leader(leader.pid) is session
    assert core.cgroups.moves == []  # the hook moved it: no second move
    assert ("hook", "h500") not in core.store.data
    assert core.store.data[("sessions", "h500")]["started"] is True
    assert 1000 in core.userfiles.runtime_dirs and core.manager.get_user(1000).started
    [new] = core.audit.events("session-new")
    assert new["adopted_from"] == "hook" and new["session"] == "h500"
    core.world.exit(leader.pid)
    assert not job.alive and (job.pid, signal.SIGTERM) in core.cgroups.signals
    assert session.stop_cause is StopCause.LEADER_EXIT and "h500" not in core.manager.sessions
    assert not core.cgroups.exists(record["scope"])


def test_leader_not_yet_moved_is_moved_in_once(core: Core) -> None:
    """The hook died between its record and its move."""
    leader, record = hook_session(core, moved=False)
    [session] = core.manager.adopt_hook_records()
    assert core.cgroups.moves == [(record["scope"], leader.pid)]
    assert leader.cgroup == core.world.abs(session.scope)


def test_leader_gone_stops_the_session_at_once(core: Core) -> None:
    leader, record = hook_session(core)
    job = core.world.spawn(uid=1000, cgroup=leader.cgroup, ignores=[signal.SIGHUP])
    core.world.exit(leader.pid, notify=False)
    [session] = core.manager.adopt_hook_records()
    assert session.leader is None and session.stop_cause is StopCause.LEADER_EXIT
    assert not job.alive and session.finalized and not core.cgroups.exists(record["scope"])
    assert ("hook", "h500") not in core.store.data


def test_start_time_mismatch_pins_nothing_and_moves_nothing(core: Core) -> None:
    """The pid now belongs to another process: never pinned, moved or killed."""
    leader, record = hook_session(core, moved=False)
    job = core.world.spawn(uid=1000, cgroup=core.world.abs(record["scope"]))
    leader.start_time += 1  # the leader died and its pid was reused
    [session] = core.manager.adopt_hook_records()
    assert session.leader is None and core.cgroups.moves == [] and not core.processes.pinned
    assert leader.alive and leader.cgroup == "/logoutd-test" and not job.alive


@pytest.mark.parametrize("damage", ["unreadable", "scope", "id", "uid-type", "unknown-uid", "type"])
def test_bad_record_is_removed_with_a_warning_and_its_scope_left(
        core: Core, caplog: pytest.LogCaptureFixture, damage: str) -> None:
    leader, record = hook_session(core)
    scope = record["scope"]
    if damage == "unreadable":
        del core.store.data[("hook", "h500")]
        core.store.unreadable[("hook", "h500")] = "Expecting value: line 1 column 1 (char 0)"
    elif damage == "scope":
        record["scope"] = "user.slice/user-0.slice/session-h500.scope"
    elif damage == "id":
        record["id"] = "../x"
    elif damage == "uid-type":
        record["uid"] = "1000"
    elif damage == "unknown-uid":
        hook_session(core, "h600", uid=4242)
        del core.store.data[("hook", "h500")]
    elif damage == "type":
        record["type"] = "telnet"
    with caplog.at_level(logging.WARNING, logger="logoutd"):
        assert core.manager.adopt_hook_records() == []
    assert not any(kind == "hook" for kind, _ in core.store.data) and not core.store.unreadable
    assert "hook/h" in caplog.text and "normal cleanup" in caplog.text, caplog.text
    assert core.manager.sessions == {} and core.cgroups.exists(scope)
    assert leader.alive


def test_late_create_session_adopts_the_hooks_scope_and_answers_existing(core: Core) -> None:
    """The daemon was stopped; it reads the request the hook gave up on: one scope, one session,
    no second move, whichever comes first (the record's event or the late request)."""
    leader, _record = hook_session(core, session_id="77")
    session, existing = core.manager.open_session(SessionRequest(uid=1000, leader=leader.pid,
                                                                 service="sshd"))
    assert existing and session.id == "77" and list(core.manager.sessions) == ["77"]
    assert core.cgroups.moves == [] and core.manager.adopt_hook_records() == []
    assert core.cgroups.children("user.slice/user-1000.slice") == ["session-77.scope"]


def test_create_for_a_leader_with_a_live_session_returns_it(core: Core) -> None:
    leader = core.world.spawn(uid=0)
    request = SessionRequest(uid=1000, leader=leader.pid)
    first, existed = core.manager.open_session(request)
    again, existed_again = core.manager.open_session(request)
    assert (existed, existed_again) == (False, True) and again is first
    assert len(core.manager.sessions) == 1 and len(core.cgroups.moves) == 1
    assert first.leader in core.processes.pinned  # its pidfd was not replaced or released
    with pytest.raises(SessionBusy):  # another user's session cannot have the same leader
        core.manager.open_session(SessionRequest(uid=1001, leader=leader.pid))
    first.release()
    with pytest.raises(SessionBusy):  # nor one that is closing
        core.manager.open_session(request)
    # su/sudo inside the session: still busy.
    inner = core.world.spawn(uid=1000, cgroup=leader.cgroup)
    with pytest.raises(SessionBusy):
        core.manager.open_session(SessionRequest(uid=1001, leader=inner.pid))


def test_record_of_a_leader_the_daemon_tracks_already_is_dropped(core: Core) -> None:
    """A race (the daemon moved the leader after the hook's check): the daemon's session stays,
    the hook's empty scope goes."""
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    scope = "user.slice/user-1000.slice/session-h9.scope"
    core.cgroups.create(scope)
    core.store.data[("hook", "h9")] = {
        "id": "h9", "scope": scope, "uid": 1000, "leader": leader.pid,
        "leader_start": leader.start_time, "timestamp": 1.0}
    assert core.manager.adopt_hook_records() == []
    assert list(core.manager.sessions) == [session.id] and not core.cgroups.exists(scope)
    assert ("hook", "h9") not in core.store.data


def test_daemon_ids_skip_scopes_that_exist(core: Core) -> None:
    core.cgroups.create("user.slice/user-1000.slice/session-42.scope")  # e.g. the hook's
    core.cgroups.create("user.slice/user-1000.slice/session-c1.scope")
    leader = core.world.spawn(uid=0, sessionid=42)
    session = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    assert session.id == "c2"


def test_restore_adopts_records_before_taking_scopes_for_orphans(core: Core) -> None:
    """Written while the daemon was down: adopted at start, leader alive, so not stopped (an
    orphan scope would be: it has no leader)."""
    leader, _ = hook_session(core)
    job = core.world.spawn(uid=1000, cgroup=leader.cgroup)
    manager = core.restart()
    session = manager.get_session("h500")
    assert session.state is SessionState.ACTIVE and session.leader is not None
    assert job.alive and ("hook", "h500") not in core.store.data
    core.world.exit(leader.pid)
    assert not job.alive and not manager.sessions


def test_restore_logout_while_down_kills_at_start(core: Core) -> None:
    leader, _ = hook_session(core)
    job = core.world.spawn(uid=1000, cgroup=leader.cgroup)
    core.world.exit(leader.pid, notify=False)
    manager = core.restart()
    assert not job.alive and not manager.sessions


def test_record_adopted_before_a_crash_is_only_removed(core: Core) -> None:
    hook_session(core)
    [_session] = core.manager.adopt_hook_records()
    core.store.data[("hook", "h500")] = {"id": "h500"}  # a crash before the record's removal
    manager = core.restart()
    assert list(manager.sessions) == ["h500"] and ("hook", "h500") not in core.store.data


def test_listeners_hear_of_adopted_sessions(core: Core) -> None:
    heard: list[Session] = []

    class Listener:
        def session_new(self, session: Session) -> None:
            heard.append(session)

        def session_removed(self, session: Session) -> None: ...
        def user_new(self, user: object) -> None: ...
        def user_removed(self, user: object) -> None: ...

    core.manager.listeners.append(Listener())  # type: ignore[arg-type]
    hook_session(core)
    assert core.manager.adopt_hook_records() == heard and len(heard) == 1


def test_record_whose_leader_pid_now_leads_another_session(core: Core) -> None:
    """The hook's leader died and its pid leads a session of ours now: that session keeps its
    pidfd and its leader; the hook's session is stopped at once."""
    leader, record = hook_session(core, moved=True)
    job = core.world.spawn(uid=1000, cgroup=leader.cgroup)
    core.world.exit(leader.pid, notify=False)
    del core.store.data[("hook", "h500")]
    reused = core.world.spawn(uid=0)
    core.world.procs[leader.pid] = reused  # the same pid, a later start
    reused.pid, reused.start_time = leader.pid, leader.start_time + 5
    other = core.manager.create_session(SessionRequest(uid=1001, leader=reused.pid))
    core.store.data[("hook", "h500")] = record
    [adopted] = core.manager.adopt_hook_records()
    assert adopted.leader is None and adopted.finalized and not job.alive
    assert other.leader in core.processes.pinned and reused.alive
    assert core.manager.session_by_leader(reused.pid) is other


def test_hook_moved_the_leader_after_the_daemon_did(core: Core) -> None:
    """The daemon answered just after the hook's deadline: both made a scope and the hook's move
    came last. Its scope holds the login, so the daemon's (empty) session ends and the hook's
    is adopted: one session, and the login's job is still killed at logout."""
    leader = core.world.spawn(uid=0)
    daemons = core.manager.create_session(SessionRequest(uid=1000, leader=leader.pid))
    scope = "user.slice/user-1000.slice/session-h9.scope"
    core.cgroups.create(scope)
    core.store.data[("hook", "h9")] = {
        "id": "h9", "scope": scope, "uid": 1000, "leader": leader.pid,
        "leader_start": leader.start_time, "timestamp": 1.0}
    leader.cgroup = core.world.abs(scope)  # the hook's move, after the daemon's
    job = core.world.spawn(uid=1000, cgroup=leader.cgroup)
    [adopted] = core.manager.adopt_hook_records()
    assert daemons.finalized and list(core.manager.sessions) == ["h9"]
    assert core.manager.session_by_leader(leader.pid) is adopted and adopted.leader is not None
    assert job.alive and not core.cgroups.exists(daemons.scope)
    core.world.exit(leader.pid)
    assert not job.alive and not core.manager.sessions


def test_empty_orphan_scope_is_removed_and_a_later_record_still_adopted(core: Core) -> None:
    """A daemon starting while the hook is between its mkdir and its record: the empty scope is
    removed (nothing to stop, so nothing of the login is signalled); the hook makes it again
    and moves the leader, and the record arriving then is adopted."""
    scope = "user.slice/user-1000.slice/session-h7.scope"
    core.cgroups.create(scope)
    manager = core.restart()
    assert not core.cgroups.exists(scope) and not manager.sessions
    leader = core.world.spawn(uid=0)
    core.cgroups.create(scope)
    leader.cgroup = core.world.abs(scope)
    core.store.data[("hook", "h7")] = {
        "id": "h7", "scope": scope, "uid": 1000, "leader": leader.pid,
        "leader_start": leader.start_time, "timestamp": 1.0}
    [session] = manager.adopt_hook_records()
    assert session.id == "h7" and leader.alive and session.state is SessionState.ACTIVE


def test_populated_orphan_scope_is_still_stopped(core: Core) -> None:
    scope = "user.slice/user-1000.slice/session-5.scope"
    core.cgroups.create(scope)
    job = core.world.spawn(uid=1000, cgroup=core.world.abs(scope))
    manager = core.restart()
    assert not job.alive and not manager.sessions and not core.cgroups.exists(scope)
