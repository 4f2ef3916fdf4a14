"""Kill records: what a logout ended, named in one info line and kept per user, bounded, across
restarts; shown once by the login notice."""

from __future__ import annotations

import logging
import signal

import pytest

from logoutd.config.model import Config
from logoutd.config.values import KillMode
from logoutd.core.killrecords import (
    CMDLINE_KEPT,
    ENTRIES_KEPT,
    PROCESSES_KEPT,
    EndedProcess,
    KillEntry,
    KillHistory,
    format_duration,
    summary,
)
from tests.fakes import FakeStore
from tests.unit.conftest import make_core
from tests.unit.test_sessions import open_session


def _entry(n: int, count: int = 1) -> KillEntry:
    return KillEntry(float(n), f"c{n}", "sshd", "pts/0", "killed", count,
                     (EndedProcess(100 + n, "sleep", "sleep 1000", 1.0),))


def test_history_keeps_the_newest_entries_per_user_and_survives_a_restart() -> None:
    store = FakeStore()
    history = KillHistory(store)
    for n in range(ENTRIES_KEPT + 5):
        history.add(1000, "alice", _entry(n))
    history.add(1001, "bob", _entry(99))
    assert [e.session for e in history.entries(1000)] == [f"c{n}" for n in range(5, 15)]
    again = KillHistory(store)
    again.restore()
    assert again.entries(1000) == history.entries(1000)
    assert [e.session for e in again.entries(1001)] == ["c99"]


def test_take_unshown_marks_them_shown_once_and_saves_it() -> None:
    store = FakeStore()
    history = KillHistory(store)
    history.add(1000, "alice", _entry(1))
    history.add(1000, "alice", _entry(2))
    assert [e.session for e in history.take_unshown(1000)] == ["c1", "c2"]
    assert history.take_unshown(1000) == []
    history.add(1000, "alice", _entry(3))
    again = KillHistory(store)
    again.restore()
    assert [e.session for e in again.take_unshown(1000)] == ["c3"]
    assert all(e.shown for e in again.entries(1000))


def test_a_bad_history_file_is_skipped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    store = FakeStore()
    store.save("kills", "1000", {"uid": 1000, "entries": [{"nonsense": 1}]})
    store.save("kills", "1001", {"uid": 1001, "user": "bob", "entries": []})
    history = KillHistory(store)
    with caplog.at_level(logging.WARNING, "logoutd"):
        history.restore()
    assert history.entries(1000) == [] and "another version" in caplog.text


def test_a_logout_that_kills_names_the_first_processes_in_one_info_line(
        caplog: pytest.LogCaptureFixture) -> None:
    core = make_core(Config(session_stop_timeout_sec=5))
    core.audit.detailed = False  # no AuditLog=: the leftovers records read nothing
    session, leader = open_session(core)
    for _ in range(100):
        core.world.spawn(cgroup=leader.cgroup)
    described: list[int] = []
    real = core.processes.describe

    def counting(pid: int):  # type: ignore[no-untyped-def]
        described.append(pid)
        return real(pid)

    core.processes.describe = counting  # type: ignore[method-assign]
    core.clock.advance(300)
    with caplog.at_level(logging.INFO, "logoutd"):
        core.world.exit(leader.pid)
    lines = [r.getMessage() for r in caplog.records if "sent SIGTERM" in r.getMessage()]
    assert len(lines) == 1, caplog.text
    assert "to 100 processes: sleep[" in lines[0] and lines[0].endswith(" and 80 more.")
    assert len(described) <= 2 * PROCESSES_KEPT  # only what it reports (and a few gone ones)
    [entry] = core.manager.kills.entries(1000)
    assert entry.mode == "killed" and entry.count == 100 and entry.session == session.id
    assert len(entry.processes) == PROCESSES_KEPT and not entry.shown


def test_the_deadline_kill_names_what_was_left(caplog: pytest.LogCaptureFixture) -> None:
    core = make_core(Config(session_stop_timeout_sec=5))
    _session, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.world.exit(leader.pid)
    with caplog.at_level(logging.INFO, "logoutd"):
        core.clock.advance(6)
    assert "killed what was left (cgroup.kill): 1 processes: sleep[" in caplog.text


def test_permissive_keeps_what_would_have_been_ended(caplog: pytest.LogCaptureFixture) -> None:
    core = make_core(Config(kill_user_processes=KillMode.PERMISSIVE))
    _session, leader = open_session(core)
    job = core.world.spawn(cgroup=leader.cgroup)
    with caplog.at_level(logging.INFO, "logoutd"):
        core.world.exit(leader.pid)
    assert f"1 processes left behind, not killed (permissive): sleep[{job.pid}] " in caplog.text
    [entry] = core.manager.kills.entries(1000)
    assert entry.mode == "permissive" and entry.count == 1
    assert entry.processes[0].pid == job.pid and job.alive


def test_a_clean_logout_keeps_nothing() -> None:
    core = make_core()
    _session, leader = open_session(core)
    core.world.exit(leader.pid)
    assert core.manager.kills.entries(1000) == []
    assert not [w for w in core.store.writes if w[0] == "kills"]


def test_kill_history_survives_a_daemon_restart() -> None:
    core = make_core()
    session, leader = open_session(core)
    core.world.spawn(cgroup=leader.cgroup)
    core.world.exit(leader.pid)
    manager = core.restart()
    assert [e.session for e in manager.kills.entries(1000)] == [session.id]


def test_strings_are_cut_and_spans_read_well() -> None:
    from logoutd.core.killrecords import ended
    from logoutd.core.ports import ProcessInfo
    info = ProcessInfo(5, 1, 1000, "x" * 40, "y" * 5000, start_time=2.0)
    [p] = ended([info] * 3)[:1]
    assert len(p.comm) == 16 and len(p.cmdline) == CMDLINE_KEPT + 1
    assert len(ended([info] * 50)) == PROCESSES_KEPT
    words = ProcessInfo(5, 1, 1000, "python3", "python3 -c import x; x.f()",
                        argv=("python3", "-c", "import x; x.f()", ""))
    assert ended([words])[0].cmdline == "python3 -c 'import x; x.f()' ''"  # pastes as it ran
    assert [format_duration(s) for s in (5, 303, 7500, 3 * 86400 + 4 * 3600)] == \
        ["5s", "5m03s", "2h05m", "3d04h"]
    assert summary((), 0, 0.0) == "-"
    assert summary((EndedProcess(7, "vim", "vim", 100.0),), 3, 160.0) == "vim[7] 1m00s and 2 more"


def test_a_users_file_is_bounded_even_with_hostile_command_lines() -> None:
    import json

    from logoutd.core.killrecords import ended
    from logoutd.core.ports import ProcessInfo
    store = FakeStore()
    history = KillHistory(store)
    hostile = ProcessInfo(5, 1, 1000, "\x01" * 64, "\u2028\x00" * 100_000, start_time=2.0)
    for n in range(3 * ENTRIES_KEPT):
        history.add(1000, "alice", KillEntry(float(n), f"c{n}", "sshd", "pts/0", "killed",
                                             10**9, ended([hostile] * 10**3)))
    assert len(json.dumps(store.data[("kills", "1000")])) < 350 * 1024


def test_kept_programs_ended_with_the_user_are_recorded_too() -> None:
    core = make_core(Config(user_stop_delay_sec=10))
    _session, leader = open_session(core)
    user = core.manager.get_user(1000)
    kept = core.world.spawn(cgroup=core.world.abs(user.service + "/app.slice/run-u1.scope"))
    core.world.exit(leader.pid)
    assert core.manager.kills.entries(1000) == []  # the session's scope was empty
    core.clock.advance(11)
    [entry] = core.manager.kills.entries(1000)
    assert (entry.session, entry.service, entry.mode, entry.count) == \
        ("", "user@1000.service", "killed", 1)
    assert entry.processes[0].pid == kept.pid


def test_the_notice_flag_exists_while_an_entry_is_unshown() -> None:
    store = FakeStore()
    history = KillHistory(store)
    history.add(1000, "alice", _entry(1))
    history.add(1000, "alice", _entry(2))
    assert ("notice", "1000") in store.data
    assert store.writes.count(("notice", "1000")) == 1  # once, not per entry
    assert len(history.take_unshown(1000)) == 2
    assert ("notice", "1000") not in store.data
    restored = KillHistory(store)
    restored.restore()
    assert ("notice", "1000") not in store.data
    history.add(1000, "alice", _entry(3))
    restored = KillHistory(store)
    store.data.pop(("notice", "1000"))  # a restart finds the history but lost the flag
    restored.restore()
    assert ("notice", "1000") in store.data
