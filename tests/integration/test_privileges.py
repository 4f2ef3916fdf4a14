"""The privilege matrix (DESIGN §10): everything an unprivileged user must not do, one case each.

Every case runs against a real daemon with two real `su -l` sessions, one of the *attacker*
(a test user) and one of the *victim* (another test user), each holding a background process.
The forbidden call is made from a child process running as the attacker's uid (/usr/bin/python3
with PYTHONPATH=<repo>/src, logoutd.api.client.Client on the daemon socket: the daemon learns
the uid from SO_PEERCRED, never from the request).  Each case asserts the exact error code and
that nothing changed: the same sessions, users, units and cgroups, every process alive in the
cgroup it was in, no linger file appeared or vanished.

The positive controls (what a user *may* do) run through the same helper, so a broken helper
or a daemon that refuses everything cannot make the matrix pass.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import cgroups
from tests.integration.harness.checks import assert_alive_for, wait_gone
from tests.integration.harness.ctl import answer
from tests.integration.harness.ctl import call_as as call_child
from tests.integration.harness.daemon import Daemon
from tests.integration.harness.env import Env
from tests.integration.harness.login import Login, script
from tests.integration.harness.procs import Proc, wait_for
from tests.integration.harness.users import TestUser

DENY_KEEP = "[Policy]\nKeepAllowUsers=nobody\n"


def call_as(env: Env, user: TestUser, method: str, **params: Any) -> tuple[bool, str, str, Any]:
    """One API call from a child running as `user` (no supplementary groups, outside any
    session): (ok, error code, message, result)."""
    r = answer(call_child(env, user, method, **params))
    return r["ok"], r.get("code", ""), r.get("message", ""), r.get("result")


@dataclass
class World:
    env: Env
    daemon: Daemon
    attacker: TestUser
    victim: TestUser
    a_login: Login
    v_login: Login
    a_session: dict[str, Any]
    v_session: dict[str, Any]
    a_proc: Proc  # the attacker's background process, in the attacker's session
    v_proc: Proc  # the victim's background process, in the victim's session
    procs: list[Proc] = field(default_factory=list)  # every process that must stay alive
    extra: dict[str, Any] = field(default_factory=dict)  # what a case's prepare() set up

    def track(self, *procs: Proc) -> None:
        self.env.track(procs)
        self.procs.extend(procs)

    @property
    def linger_dir(self) -> Path:
        return self.daemon.state_dir / "linger"

    def snapshot(self) -> dict[str, Any]:
        d = self.daemon
        return {
            "sessions": sorted((s["id"], s["uid"], s["state"], s["leader"], s["scope"])
                               for s in d.sessions()),
            "users": sorted((u["uid"], u["state"], u["linger"], tuple(u["sessions"]))
                            for u in d.users()),
            "units": sorted((u["name"], u["uid"], u["state"], tuple(u["pids"]))
                            for u in d.call("list_units")["units"]),
            "processes": {str(p): (p.alive(), p.cgroup()) for p in self.procs},
            "linger": sorted(p.name for p in self.linger_dir.iterdir())
            if self.linger_dir.is_dir() else [],
            "cgroups": [str(p) for p in cgroups.subdirs(self.env.cgroup_root)],
        }


def _login(env: Env, pam: Any, user: TestUser) -> tuple[Login, Proc]:
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    return login, procs["nohup"]


def make_world(env: Env, pam: Any, daemon: Daemon, attacker: TestUser,
               victim: TestUser) -> World:
    a_login, a_proc = _login(env, pam, attacker)
    v_login, v_proc = _login(env, pam, victim)
    a_session = daemon.wait_session(attacker.name)
    v_session = daemon.wait_session(victim.name)
    world = World(env, daemon, attacker, victim, a_login, v_login, a_session, v_session,
                  a_proc, v_proc)
    world.track(a_proc, v_proc, Proc.of(a_session["leader"], "a-leader"),
                Proc.of(v_session["leader"], "v-leader"))
    return world


# -- what some cases set up before the snapshot ------------------------------------------------

def victim_unit(w: World) -> None:
    """A service of the victim, started by the victim (the default policy allows it)."""
    ok, code, message, result = call_as(w.env, w.victim, "start_unit", argv=["sleep", "1000"],
                                        name="victim")
    assert ok, (code, message)
    unit = result["unit"]
    w.track(Proc.of(unit["main_pid"], "victim.service"))
    w.extra["unit"] = unit


def victim_lingers(w: World) -> None:
    w.daemon.call("set_linger", uid=w.victim.uid, enable=True)
    assert (w.linger_dir / w.victim.name).exists()


def dead_pid_of_victim(w: World) -> None:
    # A genuinely reused pid is hard to provoke in a test (the pid space would have to wrap
    # around onto the attacker's process). The honest approximation: a process of the victim
    # that has exited by the time the attacker names its pid. The daemon pins the pid through
    # a pidfd and re-checks owner and liveness (units.start_scope), so the same code path
    # refuses a reused pid.
    p = subprocess.Popen(["sleep", "1000"], user=w.victim.uid, group=w.victim.gid,
                         extra_groups=[], cwd="/")
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=10)
    w.extra["dead"] = p.pid


def own_uid_outside_sessions(w: World) -> None:
    """A process of the attacker's uid that root started with runuser, outside any session."""
    p = subprocess.Popen(["runuser", "-u", w.attacker.name, "--", "sh", "-c",
                          "echo $$; exec sleep 1000"], stdout=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True, cwd="/")
    assert p.stdout is not None
    pid = int(p.stdout.readline())
    stray = Proc.of(pid, "stray")
    wait_for(lambda: (Path(f"/proc/{pid}/comm").read_text().strip() == "sleep"), 10,
             "the stray process to exec sleep")
    w.track(stray, Proc.of(p.pid, "runuser"))
    w.extra["stray"] = stray
    assert not (stray.cgroup() or "").startswith(w.env.rel("user.slice")), stray.describe()


# -- the matrix -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Row:
    id: str
    method: str
    params: Callable[[World], dict[str, Any]]
    code: str
    message: Callable[[World], str] | str = ""  # a substring of the error message
    config: str | None = None
    prepare: Callable[[World], None] | None = None


def _only_root(what: str) -> str:
    return f"Only root may {what}."


def _not_yours(w: World) -> str:
    return f"Access denied: uid {w.attacker.uid} may not"


def _pid_not_yours(pid: Callable[[World], int]) -> Callable[[World], str]:
    return lambda w: f"Access denied: process {pid(w)} does not belong to uid {w.attacker.uid}."


def _vid(w: World) -> str:
    return str(w.v_session["id"])


BAD_NAMES = {"slash": "a/b", "dotdot": "..", "dotdot-path": "../../escape", "nul": "a\0b",
             "300-chars": "x" * 300}
BAD_NAME_WHY = {"slash": "it contains '/'", "dotdot": "it contains '..'",
                "dotdot-path": "it contains '/'", "nul": "contains NUL",
                "300-chars": "longer than 200 bytes"}

ROWS: list[Row] = [
    # Sessions are created and released by root (the PAM hook) only.
    Row("create_session-self", "create_session",
        lambda w: {"uid": w.attacker.uid, "leader": w.a_proc.pid}, "access_denied",
        _only_root("create sessions")),
    Row("create_session-other", "create_session",
        lambda w: {"uid": w.victim.uid, "leader": w.v_proc.pid}, "access_denied",
        _only_root("create sessions")),
    Row("release_session-own-id", "release_session",
        lambda w: {"id": w.a_session["id"]}, "access_denied", _only_root("release sessions")),
    Row("release_session-other-id", "release_session",
        lambda w: {"id": _vid(w)}, "access_denied", _only_root("release sessions")),
    Row("release_session-own-leader", "release_session",
        lambda w: {"leader": w.a_session["leader"]}, "access_denied",
        _only_root("release sessions")),
    Row("release_session-other-leader", "release_session",
        lambda w: {"leader": w.v_session["leader"]}, "access_denied",
        _only_root("release sessions")),
    # Another user's sessions and user: inspectable (positive controls), not actionable.
    Row("terminate_session-other", "terminate_session", lambda w: {"id": _vid(w)},
        "access_denied", _not_yours),
    Row("kill_session-other-all", "kill_session",
        lambda w: {"id": _vid(w), "who": "all", "signal": 9}, "access_denied", _not_yours),
    Row("kill_session-other-leader", "kill_session",
        lambda w: {"id": _vid(w), "who": "leader", "signal": 9}, "access_denied", _not_yours),
    Row("terminate_user-other", "terminate_user", lambda w: {"uid": w.victim.uid},
        "access_denied", _not_yours),
    Row("kill_user-other", "kill_user", lambda w: {"uid": w.victim.uid, "signal": 9},
        "access_denied", _not_yours),
    Row("kill_user-root", "kill_user", lambda w: {"uid": 0, "signal": 9},
        "no_such_user", "User ID 0 is not logged in or lingering."),
    # Keeping processes: only the caller's own, inside its own sessions or units.
    Row("start_scope-other-users-pid", "start_scope", lambda w: {"pid": w.v_proc.pid},
        "access_denied", _pid_not_yours(lambda w: w.v_proc.pid)),
    Row("start_scope-other-users-leader", "start_scope",
        lambda w: {"pid": w.v_session["leader"]}, "access_denied",
        _pid_not_yours(lambda w: w.v_session["leader"])),
    Row("start_scope-other-users-pid-named", "start_scope",
        lambda w: {"pid": w.v_proc.pid, "name": "grab"}, "access_denied",
        _pid_not_yours(lambda w: w.v_proc.pid)),
    Row("start_scope-daemon-pid", "start_scope",
        lambda w: {"pid": w.daemon.popen.pid if w.daemon.popen else 0}, "access_denied",
        "does not belong to uid"),
    Row("start_scope-pid-1", "start_scope", lambda w: {"pid": 1}, "no_such_process",
        "Process 1 does not exist."),
    Row("start_scope-dead-pid-of-other", "start_scope", lambda w: {"pid": w.extra["dead"]},
        "no_such_process", lambda w: f"Process {w.extra['dead']} does not exist.",
        prepare=dead_pid_of_victim),
    Row("start_scope-own-uid-outside-sessions", "start_scope",
        lambda w: {"pid": w.extra["stray"].pid}, "access_denied",
        lambda w: f"is not in a session or unit of user {w.attacker.name}",
        prepare=own_uid_outside_sessions),
    # Linger: only oneself.
    Row("set_linger-other-enable", "set_linger", lambda w: {"uid": w.victim.uid, "enable": True},
        "access_denied", lambda w: f"uid {w.attacker.uid} may not enable linger"),
    Row("set_linger-other-disable", "set_linger",
        lambda w: {"uid": w.victim.uid, "enable": False}, "access_denied",
        lambda w: f"uid {w.attacker.uid} may not disable linger", prepare=victim_lingers),
    Row("set_linger-root", "set_linger", lambda w: {"uid": 0, "enable": True},
        "access_denied", lambda w: f"uid {w.attacker.uid} may not enable linger"),
    # Policy denies keeping processes: neither a scope nor a service.
    Row("start_scope-policy-denied", "start_scope", lambda w: {"pid": w.a_proc.pid},
        "access_denied", "Keeping processes after logout is denied", config=DENY_KEEP),
    Row("start_unit-policy-denied", "start_unit", lambda w: {"argv": ["sleep", "1000"]},
        "access_denied", "Keeping processes after logout is denied", config=DENY_KEEP),
    Row("start_unit-named-policy-denied", "start_unit",
        lambda w: {"argv": ["sleep", "1000"], "name": "ok-name"}, "access_denied",
        "Keeping processes after logout is denied", config=DENY_KEEP),
    # Unit names: refused before anything is created (own pid, policy allowing).
    *[Row(f"start_scope-name-{key}", "start_scope",
          lambda w, n=name: {"pid": w.a_proc.pid, "name": n}, "invalid_argument",
          BAD_NAME_WHY[key]) for key, name in BAD_NAMES.items()],
    *[Row(f"start_unit-name-{key}", "start_unit",
          lambda w, n=name: {"argv": ["sleep", "1000"], "name": n}, "invalid_argument",
          BAD_NAME_WHY[key]) for key, name in BAD_NAMES.items()],
    # Another user's unit.
    Row("stop_unit-other-by-uid", "stop_unit",
        lambda w: {"name": "victim", "uid": w.victim.uid}, "access_denied",
        lambda w: f"uid {w.attacker.uid} may not stop unit victim.service",
        prepare=victim_unit),
    Row("stop_unit-other-full-name-by-uid", "stop_unit",
        lambda w: {"name": "victim.service", "uid": w.victim.uid}, "access_denied",
        lambda w: f"uid {w.attacker.uid} may not stop unit victim.service",
        prepare=victim_unit),
    Row("stop_unit-other-without-uid", "stop_unit", lambda w: {"name": "victim"},
        "no_such_unit", "No unit 'victim' known.", prepare=victim_unit),
    # Configuration.
    Row("reload", "reload", lambda w: {}, "access_denied",
        _only_root("reload the configuration")),
]


@pytest.fixture
def world_for(env, pam, start_daemon, make_user):  # type: ignore[no-untyped-def]
    def make(config: str | None) -> World:
        daemon = start_daemon(config)
        return make_world(env, pam, daemon, make_user(), make_user())
    return make


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_forbidden(world_for, row: Row) -> None:  # type: ignore[no-untyped-def]
    w: World = world_for(row.config)
    if row.prepare is not None:
        row.prepare(w)
    before = w.snapshot()
    ok, code, message, result = call_as(w.env, w.attacker, row.method, **row.params(w))
    expected = row.message(w) if callable(row.message) else row.message
    assert not ok, f"{row.method} as uid {w.attacker.uid} succeeded: {result}"
    assert code == row.code, (code, message)
    assert expected in message, (expected, message)
    assert_alive_for(w.env, w.procs, 0.5)  # a signal or kill would show by now
    after = w.snapshot()
    assert after == before, f"{row.id} changed state:\nbefore={before}\nafter={after}"
    assert all(alive for alive, _ in after["processes"].values()), after["processes"]
    assert len(after["sessions"]) == 2 and all(s[2] == "active" for s in after["sessions"])
    assert w.attacker.name not in after["linger"]
    if row.prepare is not victim_lingers:
        assert after["linger"] == [], after["linger"]
    if row.prepare is not victim_unit:
        assert after["units"] == [], after["units"]
    assert w.a_login.logout() == 0 and w.v_login.logout() == 0


# -- positive controls --------------------------------------------------------------------------

def _may_list_sessions(w: World, result: dict[str, Any]) -> None:
    ids = {s["id"] for s in result["sessions"]}
    assert {w.a_session["id"], w.v_session["id"]} <= ids, result


def _may_list_users(w: World, result: dict[str, Any]) -> None:
    uids = {u["uid"] for u in result["users"]}
    assert {w.attacker.uid, w.victim.uid} <= uids, result


def _may_get_other_session(w: World, result: dict[str, Any]) -> None:
    assert result["session"]["id"] == w.v_session["id"]
    assert result["session"]["uid"] == w.victim.uid


def _may_terminate_own_session(w: World, result: dict[str, Any]) -> None:
    assert result["session"]["id"] == w.a_session["id"]
    wait_gone(w.env, [w.a_proc], 10, "the attacker's own session, terminated by its owner")
    assert_alive_for(w.env, [w.v_proc], 0.5)
    w.daemon.wait_no_session(w.a_session["id"])
    assert [s["id"] for s in w.daemon.sessions()] == [w.v_session["id"]]


def _may_linger_self(w: World, result: dict[str, Any]) -> None:
    assert result == {"uid": w.attacker.uid, "name": w.attacker.name, "linger": True}
    assert (w.linger_dir / w.attacker.name).exists()


def _may_start_own_unit(w: World, result: dict[str, Any]) -> None:
    unit = result["unit"]
    assert unit["uid"] == w.attacker.uid and unit["name"] == "mine.service", unit
    w.env.track([Proc.of(unit["main_pid"], "mine.service")])


@dataclass(frozen=True)
class Allowed:
    id: str
    method: str
    params: Callable[[World], dict[str, Any]]
    check: Callable[[World, dict[str, Any]], None]


ALLOWED: list[Allowed] = [
    Allowed("list_sessions", "list_sessions", lambda w: {}, _may_list_sessions),
    Allowed("list_users", "list_users", lambda w: {}, _may_list_users),
    Allowed("get_session-other", "get_session", lambda w: {"id": _vid(w)},
            _may_get_other_session),
    Allowed("terminate_session-own", "terminate_session",
            lambda w: {"id": w.a_session["id"]}, _may_terminate_own_session),
    Allowed("set_linger-self", "set_linger", lambda w: {"enable": True}, _may_linger_self),
    Allowed("start_unit-own", "start_unit",
            lambda w: {"argv": ["sleep", "1000"], "name": "mine"}, _may_start_own_unit),
]


@pytest.mark.parametrize("case", ALLOWED, ids=[c.id for c in ALLOWED])
def test_allowed(world_for, case: Allowed) -> None:  # type: ignore[no-untyped-def]
    w: World = world_for(None)
    ok, code, message, result = call_as(w.env, w.attacker, case.method, **case.params(w))
    assert ok, (code, message)
    case.check(w, result)
    w.a_login.logout()
    assert w.v_login.logout() == 0


def test_matrix_size() -> None:
    total = len(ROWS) + len(ALLOWED)
    print(f"\nprivilege matrix: {len(ROWS)} forbidden cases + {len(ALLOWED)} positive controls "
          f"= {total} cases")
    assert len({r.id for r in ROWS}) == len(ROWS) and len(ROWS) >= 30

