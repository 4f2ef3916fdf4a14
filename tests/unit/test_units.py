"""Units (scopes and services under user@UID.service) on the pure core: fakes only, no root."""

from __future__ import annotations

import signal

import pytest

from logoutd.config.model import Config
from logoutd.core.ids import BLOCK
from logoutd.core.request import SessionRequest
from logoutd.core.unit import Unit, UnitKind, UnitState, unit_name
from logoutd.core.units import MAX_STARTING
from logoutd.errors import (
    AccessDenied,
    InvalidArgument,
    LimitsExceeded,
    LogoutdError,
    NoSuchUnit,
    NoSuchUser,
    ProcessGone,
    UnitExists,
)
from tests.fakes import FakeProcess, FakeSpawner
from tests.unit.conftest import Core, make_core

APP = "user.slice/user-1000.slice/user@1000.service/app.slice"


def login(core: Core, uid: int = 1000) -> tuple[str, FakeProcess]:
    """A session of uid; returns its id and a shell of the user inside it."""
    leader = core.world.spawn(uid=0)
    session = core.manager.create_session(SessionRequest(uid=uid, leader=leader.pid))
    shell = core.world.spawn(uid=uid, cgroup=leader.cgroup)
    return session.id, shell


def logout(core: Core, session_id: str) -> None:
    session = core.manager.sessions[session_id]
    assert session.leader is not None
    core.world.exit(session.leader.pid)


def with_spawner(core: Core) -> FakeSpawner:
    spawner = FakeSpawner(core.world)
    core.ports.spawner = spawner
    return spawner


def start(core: Core, argv: list[str], name: str | None = None, env: dict[str, str] | None = None,
          cwd: str | None = None, uid: int = 1000,
          outcomes: list[LogoutdError | None] | None = None) -> Unit:
    """start_service as the API calls it; what the spawner reported goes to `outcomes`."""
    told = outcomes if outcomes is not None else []
    return core.manager.units.start_service(uid, argv, name, env or {}, cwd,
                                            lambda unit, error: told.append(error))


@pytest.mark.parametrize(("name", "kind", "full"), [
    ("backup", UnitKind.SERVICE, "backup.service"),
    ("backup.service", UnitKind.SERVICE, "backup.service"),
    ("tmux-0:main@x_y", UnitKind.SCOPE, "tmux-0:main@x_y.scope"),
    ("a" * 192, UnitKind.SERVICE, "a" * 192 + ".service"),
])
def test_valid_names(name: str, kind: UnitKind, full: str) -> None:
    assert unit_name(name, kind) == full


@pytest.mark.parametrize(("name", "kind", "why"), [
    ("", UnitKind.SCOPE, "it is empty"),
    (".scope", UnitKind.SCOPE, "it is empty"),
    ("a/b", UnitKind.SERVICE, "it contains '/'"),
    ("..", UnitKind.SERVICE, "it contains '..'"),
    ("a..b", UnitKind.SCOPE, "it contains '..'"),
    ("a\0b", UnitKind.SCOPE, "it contains NUL"),
    ("a" * 300, UnitKind.SERVICE, "it is longer than 200 bytes"),
    ("a" * 194, UnitKind.SERVICE, "it is longer than 200 bytes"),
    ("é" * 100, UnitKind.SCOPE, "it is longer than 200 bytes"),
    ("a b", UnitKind.SCOPE, "only letters, digits and ':_.@-' are allowed"),
    ("x.service", UnitKind.SCOPE, "a scope needs the suffix .scope, not .service"),
    (".hidden", UnitKind.SCOPE, "not a leading '.'"),
])
def test_invalid_names(name: str, kind: UnitKind, why: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        unit_name(name, kind)
    assert e.value.message.startswith("Invalid unit name '") and why in e.value.message
    assert "\n" not in e.value.message and "\0" not in e.value.message


def held_start(core: Core, name: str) -> tuple[FakeSpawner, Unit, list[LogoutdError | None]]:
    """alice logged in; `sleep 100` started as NAME, its child not reported yet (starting)."""
    spawner = with_spawner(core)
    spawner.hold = True
    login(core)
    outcomes: list[LogoutdError | None] = []
    return spawner, start(core, ["sleep", "100"], name, outcomes=outcomes), outcomes


def test_scope_moves_the_callers_process(core: Core) -> None:
    _, shell = login(core)
    unit = core.manager.units.start_scope(1000, shell.pid, None)
    number = int(unit.name.removeprefix("run-u").removesuffix(".scope"))
    assert unit.name == f"run-u{number}.scope" and unit.kind is UnitKind.SCOPE
    assert shell.cgroup == core.world.abs(f"{APP}/{unit.name}")
    assert core.manager.users[1000].units == {unit.name: unit}
    assert core.store.data[("units", f"1000-{unit.name}")]["kind"] == "scope"
    assert core.audit.events("keep") == [{
        "user": "alice", "unit": unit.name, "granted": True,
        "rule": "KeepAllowUsers= and KeepAllowGroups= unset: everyone may"}]
    second = core.manager.units.start_scope(1000, core.world.spawn(cgroup=shell.cgroup).pid, None)
    assert second.name == f"run-u{number + 1}.scope"


def test_name_in_use_is_refused(core: Core) -> None:
    _, shell = login(core)
    core.manager.units.start_scope(1000, shell.pid, "job")
    other = core.world.spawn(cgroup=shell.cgroup)
    with pytest.raises(UnitExists, match=r"^Unit job.scope already exists\.$"):
        core.manager.units.start_scope(1000, other.pid, "job.scope")


def test_own_uid_outside_own_sessions_is_refused(core: Core) -> None:
    """Same uid, but not in a session or unit of the user (a system service running as alice)."""
    login(core)
    service = core.world.spawn(uid=1000, cgroup="/system.slice/alices-daemon.service")
    with pytest.raises(AccessDenied, match="is not in a session or unit of user alice"):
        core.manager.units.start_scope(1000, service.pid, None)
    assert service.cgroup == "/system.slice/alices-daemon.service" and not core.manager.units.all()


def test_policy_denial_changes_nothing() -> None:
    core = make_core(Config(keep_allow_users=("bob",)))
    with_spawner(core)
    _, shell = login(core)
    before = shell.cgroup
    with pytest.raises(AccessDenied) as e:
        core.manager.units.start_scope(1000, shell.pid, "x")
    assert e.value.message == ("Keeping processes after logout is denied: user alice is not in "
                               "KeepAllowUsers=bob KeepAllowGroups=(empty).")
    with pytest.raises(AccessDenied):
        start(core, ["sleep", "1"], None, {}, None)
    assert shell.cgroup == before
    assert not [k for k in core.store.data if k[0] == "units"]
    assert not [d for d in core.world.dirs if "app.slice" in d]
    assert not core.manager.users[1000].units
    assert [r["granted"] for r in core.audit.events("keep")] == [False, False]


def test_another_users_or_a_dead_pid_is_refused(core: Core) -> None:
    login(core)
    _, bobs = login(core, 1001)
    with pytest.raises(AccessDenied, match="does not belong to uid 1000"):
        core.manager.units.start_scope(1000, bobs.pid, None)
    assert bobs.cgroup.endswith("session-c2.scope")
    core.world.exit(bobs.pid)
    with pytest.raises(ProcessGone, match=f"Process {bobs.pid} does not exist"):
        core.manager.units.start_scope(1000, bobs.pid, None)
    assert not core.manager.users[1000].units and not core.audit.events("keep")


def test_root_may_move_anyones_process_into_its_users_scope(core: Core) -> None:
    _, shell = login(core)
    unit = core.manager.units.start_scope(0, shell.pid, None)
    assert unit.user.uid == 1000 and shell.cgroup.endswith(f"app.slice/{unit.name}")


def test_a_user_without_session_or_linger_cannot_start_units(core: Core) -> None:
    proc = core.world.spawn()
    with pytest.raises(NoSuchUser, match=r"^User alice \(uid 1000\) has no session and does "
                                         r"not linger"):
        core.manager.units.start_scope(1000, proc.pid, None)


def test_service_is_spawned_as_the_user_in_its_cgroup(core: Core) -> None:
    spawner = with_spawner(core)
    login(core)
    unit = start(core, ["sleep", "100"], "backup", {"A": "b"}, None)
    request = spawner.requests[0]
    assert request.cgroup == f"{APP}/backup.service" == unit.cgroup
    assert (request.uid, request.gid, request.user, request.cwd) == (1000, 1000, "alice",
                                                                     "/home/alice")
    assert request.env == {"HOME": "/home/alice", "USER": "alice", "LOGNAME": "alice",
                           "PATH": "/usr/local/bin:/usr/bin:/bin",
                           "XDG_RUNTIME_DIR": "/run/user/1000", "A": "b"}
    assert request.log_path == unit.log_path == "/run/user/1000/logoutd/backup.service.log"
    assert unit.main is not None and core.cgroups.pids(unit.cgroup) == [unit.main.pid]
    main_pid = unit.main.pid
    assert core.world.procs[main_pid].uid == 1000
    # The main process exits: reaped, the empty unit is removed.
    core.world.exit(main_pid)
    assert spawner.reaped == [main_pid]
    assert unit.finalized and not core.manager.users[1000].units
    assert ("units", "1000-backup.service") not in core.store.data
    assert not core.cgroups.exists(unit.cgroup)


@pytest.mark.parametrize(("argv", "cwd", "env", "message"), [
    ([], None, {}, "No command given."),
    (["true"], "relative", {}, "Working directory 'relative' is not an absolute path."),
    (["true"], None, {"A=B": "c"}, "Invalid environment variable name 'A=B'."),
])
def test_service_arguments_are_checked(core: Core, argv: list[str], cwd: str | None,
                                       env: dict[str, str], message: str) -> None:
    with_spawner(core)
    login(core)
    with pytest.raises(InvalidArgument) as e:
        start(core, argv, None, env, cwd)
    assert e.value.message == message


def test_failed_spawn_leaves_nothing(core: Core) -> None:
    spawner = with_spawner(core)
    login(core)
    spawner.fail = InvalidArgument("Cannot use working directory '/x' as user alice: No such "
                                   "file or directory.")
    outcomes: list[LogoutdError | None] = []
    unit = start(core, ["true"], "x", {}, "/x", outcomes=outcomes)
    assert outcomes == [spawner.fail] and unit.finalized
    assert not core.manager.users[1000].units
    assert not [k for k in core.store.data if k[0] == "units"]
    assert not core.cgroups.exists(f"{APP}/x.service")
    assert core.manager.units.result(1000, "x") is None  # the caller got the error, no result
    spawner.fail, spawner.refuse = None, OSError(11, "fork failed")
    with pytest.raises(OSError):
        start(core, ["true"], "y")
    assert not core.manager.users[1000].units and not core.cgroups.exists(f"{APP}/y.service")


def test_units_survive_logout_and_end_with_the_user() -> None:
    core = make_core(Config(user_stop_delay_sec=10))
    sid, shell = login(core)
    unit = core.manager.units.start_scope(1000, shell.pid, None)
    logout(core, sid)
    user = core.manager.users[1000]
    assert shell.alive and sid not in core.manager.sessions and not user.finalized
    core.clock.advance(9.9)
    assert shell.alive and not user.stopping
    core.clock.advance(0.2)
    assert not shell.alive and (shell.pid, signal.SIGTERM) in core.cgroups.signals
    assert unit.finalized and user.finalized and 1000 not in core.manager.users
    assert not [k for k in core.store.data if k[0] in ("units", "users")]


def test_stopping_user_marks_units_and_kills_stubborn_ones_after_timeout() -> None:
    core = make_core(Config(user_stop_delay_sec=0, user_stop_timeout_sec=5))
    sid, shell = login(core)
    shell.ignores.add(signal.SIGTERM)
    unit = core.manager.units.start_scope(1000, shell.pid, "stubborn")
    logout(core, sid)
    core.clock.advance(0)
    assert shell.alive and unit.state is UnitState.STOPPING
    assert not core.manager.users[1000].finalized  # not while a unit remains
    core.clock.advance(5.1)
    assert not shell.alive and unit.finalized and core.manager.users.get(1000) is None


def test_lingering_user_keeps_its_units() -> None:
    core = make_core(Config(user_stop_delay_sec=1))
    core.userfiles.set_linger("alice", True)
    sid, shell = login(core)
    core.manager.units.start_scope(1000, shell.pid, None)
    logout(core, sid)
    core.clock.advance(60)
    assert shell.alive and core.manager.users[1000].units


def test_stop_unit_sigterm_then_sigkill() -> None:
    core = make_core(Config(user_stop_timeout_sec=3))
    _, shell = login(core)
    stubborn = core.world.spawn(cgroup=shell.cgroup, ignores=[signal.SIGTERM])
    unit = core.manager.units.start_scope(1000, shell.pid, None)
    core.cgroups.move(unit.cgroup, stubborn.pid)
    assert unit.stop() == 2
    assert not shell.alive and stubborn.alive and unit.state is UnitState.STOPPING
    assert core.store.data[("units", unit.key)]["state"] == "stopping"
    core.clock.advance(3.1)
    assert not stubborn.alive and core.cgroups.kills == [unit.cgroup] and unit.finalized
    assert not core.manager.users[1000].finalized  # the user goes on


def test_restore_after_restart() -> None:
    core = make_core(Config(user_stop_delay_sec=10))
    spawner = with_spawner(core)
    sid, shell = login(core)
    scope = core.manager.units.start_scope(1000, shell.pid, "keep")
    service = start(core, ["sleep", "1000"], "svc", {}, None)
    gone = core.manager.units.start_scope(1000, core.world.spawn(cgroup=core.world.abs(
        f"user.slice/user-1000.slice/session-{sid}.scope")).pid, "gone")
    assert service.main is not None
    main_pid = service.main.pid
    core.world.exit(core.cgroups.pids(gone.cgroup)[0], notify=False)
    manager = core.restart()
    user = manager.users[1000]
    assert sorted(user.units) == ["keep.scope", "svc.service"]
    restored = user.units["svc.service"]
    assert restored.main is not None and restored.main.pid == main_pid
    assert restored.log_path == service.log_path and restored.created == service.created
    assert ("units", "1000-gone.scope") not in core.store.data  # emptied while down
    assert [u.name for u in manager.units.all()] == ["keep.scope", "svc.service"]
    # The restored units still die with the user.
    logout(core, sid)
    core.clock.advance(10.1)
    assert not shell.alive and not core.world.procs[main_pid].alive
    assert 1000 not in manager.users and not [k for k in core.store.data if k[0] == "units"]
    assert scope.name == "keep.scope" and spawner.requests


def test_restore_drops_units_whose_cgroup_vanished(core: Core) -> None:
    _, shell = login(core)
    unit = core.manager.units.start_scope(1000, shell.pid, None)
    core.world.exit(shell.pid, notify=False)
    core.world.dirs.discard(unit.cgroup)
    manager = core.restart()
    assert not manager.users[1000].units and ("units", unit.key) not in core.store.data


def test_a_service_ends_with_its_main_process_and_keeps_its_result() -> None:
    core = make_core(Config(user_stop_timeout_sec=3))
    spawner = with_spawner(core)
    login(core)
    unit = start(core, ["job"], "job", {}, None)
    assert unit.main is not None
    main_pid = unit.main.pid
    child = core.world.spawn(cgroup=core.world.abs(unit.cgroup))
    stubborn = core.world.spawn(cgroup=core.world.abs(unit.cgroup), ignores=[signal.SIGTERM])
    spawner.exit_codes[main_pid] = 3
    core.world.exit(main_pid)
    # As a Type=simple service: what the main process left is stopped.
    assert unit.state is UnitState.STOPPING and not child.alive and stubborn.alive
    assert signal.SIGTERM in stubborn.received
    assert core.manager.units.result(1000, "job") is None  # not finished yet
    core.clock.advance(3.1)
    assert not stubborn.alive and unit.finalized
    assert core.manager.units.result(1000, "job") == {
        "name": "job.service", "uid": 1000, "kind": "service", "exit_status": 3,
        "result": "exit-code"}
    assert core.manager.units.result(1000, "job.service") is not None
    assert core.manager.units.result(1001, "job") is None


@pytest.mark.parametrize(("code", "result"), [(0, "success"), (-9, "signal"), (None, "unknown")])
def test_service_results(code: int | None, result: str) -> None:
    core = make_core()
    spawner = with_spawner(core)
    login(core)
    unit = start(core, ["job"], None, {}, None)
    assert unit.main is not None
    if code is not None:
        spawner.exit_codes[unit.main.pid] = code
    core.world.exit(unit.main.pid)
    assert unit.finalized
    found = core.manager.units.result(1000, unit.name)
    assert found is not None and (found["exit_status"], found["result"]) == (code, result)


def test_a_service_whose_main_exited_while_logoutd_was_down_is_stopped_on_restart() -> None:
    core = make_core()
    with_spawner(core)
    login(core)
    unit = start(core, ["job"], "job", {}, None)
    assert unit.main is not None
    left = core.world.spawn(cgroup=core.world.abs(unit.cgroup))
    core.world.exit(unit.main.pid, notify=False)  # while the daemon is down
    manager = core.restart()
    restored = manager.users[1000].units.get("job.service")
    assert not left.alive
    assert restored is None or restored.finalized
    assert ("units", "1000-job.service") not in core.store.data


def test_stop_unit_saves_its_sigkill_deadline_before_signalling() -> None:
    """A crash inside the SIGTERM round must still leave the deadline on disk."""
    core = make_core(Config(user_stop_timeout_sec=3))
    _, shell = login(core)
    unit = core.manager.units.start_scope(1000, shell.pid, None)

    def crash(path: str, signals: object, **kwargs: object) -> int:
        raise RuntimeError("daemon killed in the middle of the round")

    core.cgroups.signal_all = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        unit.stop()
    saved = core.store.data[("units", unit.key)]
    assert saved["state"] == "stopping"
    assert saved["sigkill_at"] == pytest.approx(core.clock.now() + 3)


def test_autokeep_adopt_never_replaces_a_live_unit_of_the_same_name(core: Core) -> None:
    _, shell = login(core)
    first = core.manager.units.adopt(core.manager.users[1000], [shell.pid], "autokeep-42")
    other = core.world.spawn(cgroup=shell.cgroup)
    second = core.manager.units.adopt(core.manager.users[1000], [other.pid], "autokeep-42")
    assert (first.name, second.name) == ("autokeep-42.scope", "autokeep-42-2.scope")
    units = core.manager.users[1000].units
    assert units["autokeep-42.scope"] is first and not first.finalized
    assert core.cgroups.pids(first.cgroup) == [shell.pid]
    assert core.cgroups.pids(second.cgroup) == [other.pid]


def test_stopping_user_saves_its_sigkill_deadline_before_signalling() -> None:
    core = make_core(Config(user_stop_delay_sec=0, user_stop_timeout_sec=5))
    _, shell = login(core)
    core.manager.units.start_scope(1000, shell.pid, "kept")
    user = core.manager.users[1000]

    def crash(path: str, signals: object, **kwargs: object) -> int:
        raise RuntimeError("daemon killed in the middle of the round")

    core.cgroups.signal_all = crash  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        user.stop(force=False)
    saved = core.store.data[("users", "1000")]
    assert saved["sigkill_at"] == pytest.approx(core.clock.now() + 5)


# -- starting: the API answers once the child reported, never waiting on it ------------------


def test_a_service_is_starting_until_its_child_reports(core: Core) -> None:
    spawner, unit, outcomes = held_start(core, "backup")
    assert unit.state is UnitState.STARTING and unit.spawning and outcomes == []
    assert core.store.data[("units", unit.key)]["state"] == "starting"
    assert unit.main is not None and unit.main.pid in spawner.pending
    # The cgroup is empty until the child has moved itself in: no collecting meanwhile.
    core.world.exit(unit.main.pid, notify=False)
    unit.gc()
    assert not unit.finalized and core.manager.units.find(1000, "backup") is unit
    core.world.procs[unit.main.pid].alive = True
    spawner.report(unit.main.pid)
    assert outcomes == [None] and unit.state is UnitState.ACTIVE and not unit.spawning
    assert core.store.data[("units", unit.key)]["state"] == "active"
    core.world.exit(unit.main.pid)  # watched from now on: it ends with its main process
    assert unit.finalized and core.manager.units.result(1000, "backup") is not None


def test_a_start_that_timed_out_is_undone(core: Core) -> None:
    spawner, unit, outcomes = held_start(core, "backup")
    assert unit.main is not None
    pid = unit.main.pid
    error = LogoutdError("Starting backup.service as user alice did not finish within 5 s "
                         "(stuck opening the log /run/user/1000/logoutd/backup.service.log); it "
                         "was killed.")
    spawner.report(pid, error)
    assert outcomes == [error] and unit.finalized and unit.state is UnitState.FAILED
    assert not core.cgroups.exists(unit.cgroup) and ("units", unit.key) not in core.store.data
    assert not [r for r in core.processes.pinned if r.pid == pid]
    assert core.manager.units.result(1000, "backup") is None
    assert not core.manager.users[1000].units


def test_a_failed_start_whose_child_is_not_gone_yet_is_killed_then_removed(core: Core) -> None:
    spawner, unit, outcomes = held_start(core, "slow")
    assert unit.main is not None
    spawner.report(unit.main.pid, LogoutdError("timed out"), exited=False)
    assert outcomes and core.cgroups.kills == [unit.cgroup]
    assert unit.finalized and not core.cgroups.exists(unit.cgroup)  # the fake kill is at once
    assert core.manager.units.result(1000, "slow") is None


def test_starts_in_flight_are_capped_per_user(core: Core) -> None:
    spawner = with_spawner(core)
    spawner.hold = True
    login(core)
    login(core, 1001)
    units = [start(core, ["sleep", "1"]) for _ in range(MAX_STARTING)]
    granted = len(core.audit.events("keep"))
    with pytest.raises(LimitsExceeded) as e:
        start(core, ["sleep", "1"], "fifth")
    assert e.value.message == ("Too many units starting for user alice (at most 4 at a time): "
                               "try again once they have started.")
    assert core.manager.units.find(1000, "fifth") is None
    assert len(core.audit.events("keep")) == granted  # refused before policy, nothing audited
    assert not core.cgroups.exists(f"{APP}/fifth.service")
    assert start(core, ["sleep", "1"], uid=1001).state is UnitState.STARTING  # bob is not alice
    first = units[0]
    assert first.main is not None
    spawner.report(first.main.pid)
    assert start(core, ["sleep", "1"], "fifth").state is UnitState.STARTING


def test_a_start_never_confirmed_before_a_restart_is_killed() -> None:
    core = make_core(Config(user_stop_delay_sec=60))
    spawner = with_spawner(core)
    spawner.hold = True
    login(core)
    unit = start(core, ["sleep", "100"], "lost")
    assert unit.main is not None
    child = core.world.procs[unit.main.pid]
    manager = core.restart()  # the old daemon died before the child's report
    assert not child.alive and core.cgroups.kills == [unit.cgroup]
    assert manager.units.find(1000, "lost") is None
    assert ("units", unit.key) not in core.store.data and not core.cgroups.exists(unit.cgroup)
    assert manager.units.result(1000, "lost") is None and not manager.users[1000].finalized


def test_an_unconfirmed_start_whose_child_died_with_the_daemon_is_removed_on_restart() -> None:
    """The child lost its report pipe with the daemon and exited: an empty cgroup is left."""
    core = make_core(Config(user_stop_delay_sec=60))
    spawner = with_spawner(core)
    spawner.hold = True
    login(core)
    unit = start(core, ["true"], "half")
    assert unit.main is not None
    core.world.exit(unit.main.pid, notify=False)
    manager = core.restart()
    assert manager.units.find(1000, "half") is None and not core.cgroups.kills
    assert not core.cgroups.exists(unit.cgroup) and ("units", unit.key) not in core.store.data


def test_stopped_while_starting(core: Core) -> None:
    spawner, unit, outcomes = held_start(core, "brief")
    assert unit.main is not None
    pid = unit.main.pid
    assert unit.stop() == 1  # SIGTERM: the fake child ends
    assert unit.state is UnitState.STOPPING and not unit.finalized  # still spawning
    spawner.report(pid)  # it had exec'd just before
    assert outcomes == [None] and unit.finalized and unit.state is UnitState.STOPPING


def test_a_failed_save_after_the_fork_still_ends_the_start(core: Core) -> None:
    """The state filesystem refuses the save after the fork: the caller gets that error, and
    the child's report still settles the unit (here: it exec'd, so it runs and is watched)."""
    spawner = with_spawner(core)
    spawner.hold = True
    login(core)
    real_save, calls = core.store.save, []

    def save(kind: str, key: str, record: dict[str, object]) -> None:
        calls.append(record.get("main_pid"))
        if record.get("main_pid") is not None and len(calls) == 2:
            raise LogoutdError("Cannot write the state: No space left on device.")
        real_save(kind, key, record)

    core.store.save = save  # type: ignore[method-assign]
    outcomes: list[LogoutdError | None] = []
    with pytest.raises(LogoutdError, match="No space left"):
        start(core, ["sleep", "100"], "full", outcomes=outcomes)
    unit = core.manager.units.find(1000, "full")
    assert unit is not None and unit.main is not None and unit.main.pid in spawner.pending
    spawner.report(unit.main.pid)
    assert outcomes == [None] and unit.state is UnitState.ACTIVE
    core.world.exit(unit.main.pid)
    assert unit.finalized


def test_lookup_by_name_is_the_callers_and_roots_only_if_unique(core: Core) -> None:
    _, alices = login(core)
    _, bobs = login(core, 1001)
    units = core.manager.units
    mine = units.start_scope(1000, alices.pid, "job")
    units.start_scope(1001, bobs.pid, "job")
    solo = units.start_scope(1001, core.world.spawn(uid=1001, cgroup=bobs.cgroup).pid, "solo")
    assert units.lookup("job", None, 1000) is mine is units.lookup("job.scope", None, 1000)
    assert units.lookup("job", 1000, 0) is mine
    assert units.lookup("solo", None, 0) is solo  # root: unique among all users
    for name, uid, caller in (("job", None, 0),  # two users have one: not unique
                              ("solo", None, 1000), ("job.service", None, 1000),
                              ("nope", None, 0)):
        with pytest.raises(NoSuchUnit, match=rf"^No unit '{name}' known\.$"):
            units.lookup(name, uid, caller)


def test_session_ids_and_unit_names_share_one_counter(core: Core) -> None:
    """One allocator over the counter file: one reservation serves sessions and units alike."""
    before = core.store.counter
    session_id, shell = login(core)
    unit = core.manager.units.start_scope(1000, shell.pid, None)
    assert session_id == f"c{before}" and unit.name == f"run-u{before + 1}.scope"
    assert core.store.counter == before + BLOCK  # one block reserved, not one per kind


def test_the_client_that_asked_is_in_the_audit_record(core: Core) -> None:
    """The user bus names the program (systemd-run); logoutctl's socket path names none."""
    with_spawner(core)
    _, shell = login(core)
    core.manager.units.start_scope(1000, shell.pid, "a", client="systemd-run")
    core.manager.units.start_service(1000, ["sleep", "1"], "b", {}, None, lambda u, e: None,
                                     client="systemd-run")
    start(core, ["sleep", "1"], "c")
    assert [(r["unit"], r.get("client")) for r in core.audit.events("keep")] == [
        ("a.scope", "systemd-run"), ("b.service", "systemd-run"), ("c.service", None)]


def test_finish_listeners_hear_each_finished_unit_with_its_result() -> None:
    core = make_core(Config(user_stop_timeout_sec=3))
    spawner = with_spawner(core)
    login(core)
    heard: list[tuple[str, dict[str, object]]] = []
    core.manager.units.finish_listeners.append(lambda unit, result: heard.append((unit.name,
                                                                                  result)))

    def broken(unit: Unit, result: dict[str, object]) -> None:
        raise RuntimeError("a listener's bug")
    core.manager.units.finish_listeners.insert(0, broken)  # logged; the others still hear
    unit = start(core, ["job"], "job")
    assert unit.main is not None
    spawner.exit_codes[unit.main.pid] = 1
    core.world.exit(unit.main.pid)
    assert unit.finalized
    assert heard == [("job.service", {"name": "job.service", "uid": 1000, "kind": "service",
                                      "exit_status": 1, "result": "exit-code"})]


def test_kill_signals_the_main_process_or_every_process(core: Core) -> None:
    with_spawner(core)
    login(core)
    unit = start(core, ["job"], "job")
    assert unit.main is not None
    main = core.world.procs[unit.main.pid]
    other = core.world.spawn(cgroup=core.world.abs(unit.cgroup), ignores=[signal.SIGUSR1])
    assert unit.kill("main", signal.SIGUSR1) == 1
    assert signal.SIGUSR1 not in other.received
    assert unit.kill("all", signal.SIGUSR1) == 2 and signal.SIGUSR1 in other.received
    assert main.alive is False or signal.SIGUSR1 in main.received
    with pytest.raises(InvalidArgument, match="Invalid kill parameter 'control'"):
        unit.kill("control", signal.SIGTERM)
    assert unit.state is UnitState.ACTIVE or unit.finalized
