"""Units over real logins: `logoutctl run` inside `su -l` sessions as the test user, a real
daemon spawning services, real cgroups. Units survive logout, end UserStopDelaySec= after the
last session, survive that too when lingering; policy and ownership are enforced."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.integration.harness.checks import assert_alive_for, wait_gone, wait_session_removed
from tests.integration.harness.ctl import api_as, ctl_words, in_session, tagged
from tests.integration.harness.login import script
from tests.integration.harness.procs import Proc, status_field, wait_for

DELAY = "[Login]\nUserStopDelaySec=2s\n"


def units_of(daemon: Any, user: Any) -> list[dict[str, Any]]:
    return [u for u in daemon.call("list_units")["units"] if u["uid"] == user.uid]


def started_units_of(daemon: Any, user: Any) -> list[dict[str, Any]] | None:
    """The user's units once none is starting (a start is answered when its child exec'd)."""
    units = units_of(daemon, user)
    return units if units and all(u["state"] != "starting" for u in units) else None


def start_unit_in_session(env, pam, user, daemon, words: str):  # type: ignore[no-untyped-def]
    login = env.login("su", pam, user, script(extra=in_session(env, "run", words, stderr=True)))
    login.wait_ready()
    session = daemon.wait_session(user.name)
    [unit] = daemon.wait_for(lambda: started_units_of(daemon, user), 10, "the unit")
    procs = [Proc.of(pid, unit["name"]) for pid in unit["pids"]]
    env.track(procs)
    return login, session, unit, procs


def test_run_unit_survives_logout_and_ends_after_the_stop_delay(env, user, pam, start_daemon):
    daemon = start_daemon(DELAY)
    words = "run --unit keep --setenv GREETING=hi -- sh -c 'echo $GREETING $USER; exec sleep 1000'"
    login, session, unit, procs = start_unit_in_session(env, pam, user, daemon, words)
    rc, lines = tagged(login, "run")
    log = f"{daemon.user_runtime_root}/{user.uid}/logoutd/keep.service.log"
    assert rc == 0 and lines == [
        f"Running as unit: keep.service; output goes to {log}",
        "It survives logout, and ends 2s after your last session unless you linger "
        "(logoutctl enable-linger)."], login.report()
    assert unit["name"] == "keep.service" and unit["state"] == "active", unit
    [main] = procs
    assert main.cgroup() == env.rel(unit["cgroup"]) and unit["main_pid"] == main.pid
    assert status_field(main.pid, "Uid").split()[0] == str(user.uid)
    wait_for(lambda: Path(log).read_text() == f"hi {user.name}\n", 5, "the unit's log")
    assert login.logout() == 0
    wait_session_removed(env, daemon, session)
    assert_alive_for(env, procs, 1.0)  # the session is gone, the unit is not
    wait_gone(env, procs, 6, "the unit, UserStopDelaySec=2s after the last session")
    daemon.wait_for(lambda: not units_of(daemon, user), 5, "the unit to be removed")
    wait_for(lambda: not (env.cgroup_root / unit["cgroup"]).exists(), 5, "the unit's cgroup")


def test_run_unit_survives_the_stop_delay_when_lingering(env, user, pam, start_daemon):
    daemon = start_daemon(DELAY)
    daemon.call("set_linger", uid=user.uid, enable=True)
    login, session, _, procs = start_unit_in_session(env, pam, user, daemon,
                                                     "run --unit lingering -- sleep 1000")
    rc, lines = tagged(login, "run")
    assert rc == 0 and lines[-1] == "It survives logout; lingering: it keeps running.", lines
    assert login.logout() == 0
    wait_session_removed(env, daemon, session)
    assert_alive_for(env, procs, 3.5)
    # stop-unit as the owner ends it.
    assert api_as(env, user, "stop_unit", name="lingering")["result"]["unit"]["state"] == "stopping"
    wait_gone(env, procs, 5, "the stopped unit")
    daemon.wait_for(lambda: not units_of(daemon, user), 5, "the unit to be removed")


def test_run_scope_from_a_session_survives_logout(env, user, pam, start_daemon):
    daemon = start_daemon(DELAY)
    extra = (f"{ctl_words(env)} run --scope --unit kept -- sleep 1001 >/dev/null 2>&1 & "
             '_p=$!; _comm $_p sleep; echo "PID kept $_p"')
    login = env.login("su", pam, user, script(extra=extra))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    [unit] = units_of(daemon, user)
    kept = procs["kept"]
    assert unit["name"] == "kept.scope" and unit["pids"] == [kept.pid], unit
    assert kept.cgroup() == env.rel(unit["cgroup"])
    assert login.logout() == 0
    wait_session_removed(env, daemon, session)
    assert_alive_for(env, [kept], 1.0)
    wait_gone(env, [kept], 6, "the scope, with its user")


def test_cannot_keep_another_users_or_a_dead_pid(env, user, user2, pam, start_daemon):
    daemon = start_daemon(DELAY)
    login = env.login("su", pam, user2, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    daemon.wait_session(user2.name)
    victim = procs["nohup"]
    before = victim.cgroup()
    answer = api_as(env, user, "start_scope", pid=victim.pid)
    assert answer == {"code": "access_denied", "message":
                      f"Access denied: process {victim.pid} does not belong to uid {user.uid}."}
    # A pid whose owner exited (and that may be reused by anyone later): a clear error.
    dead = subprocess.Popen(["true"], user=user.uid)
    dead.wait()
    answer = api_as(env, user, "start_scope", pid=dead.pid)
    assert answer["code"] in ("no_such_process", "access_denied"), answer
    assert victim.cgroup() == before and daemon.call("list_units")["units"] == []
    assert login.logout() == 0


def test_policy_denial_and_bad_names(env, user, pam, start_daemon):
    daemon = start_daemon("[Policy]\nKeepAllowUsers=root\n")
    words = [("denied", "run --unit x -- sleep 1")] + [
        (f"name{i}", f"run --unit '{name}' -- sleep 1")
        for i, name in enumerate(["a/b", "..", "x" * 300])]
    extra = "; ".join(in_session(env, tag, w, stderr=True) for tag, w in words)
    login = env.login("su", pam, user, script(extra=extra))
    login.wait_ready()
    rc, lines = tagged(login, "denied")
    assert rc == 4 and lines == [
        f"Keeping processes after logout is denied: user {user.name} is not in "
        "KeepAllowUsers=root KeepAllowGroups=(empty)."], login.report()
    for i, why in enumerate(["it contains '/'", "it contains '..'", "longer than 200 bytes"]):
        rc, lines = tagged(login, f"name{i}")
        assert rc == 2 and len(lines) == 1 and lines[0].startswith("Invalid unit name '"), lines
        assert why in lines[0], lines
    answer = api_as(env, user, "start_unit", argv=["true"], name="a\0b")
    assert answer["code"] == "invalid_argument" and "NUL" in answer["message"], answer
    assert daemon.call("list_units")["units"] == []
    assert "Denied x.service to user" in daemon.log()
    assert login.logout() == 0


def test_run_wait_ends_with_the_main_process_and_its_status(env, user, pam, start_daemon):
    """A service ends with its main process (what it left is stopped), and `run --wait` exits
    with the main process's status, as systemd-run --wait."""
    daemon = start_daemon("[Logoutd]\nUserStopTimeoutSec=2s\n")
    leftover = "(trap '' TERM; exec sleep 1000) & (setsid sleep 1001 &); sleep 0.3; exit 3"
    words = [("exit3", f"run --unit left --wait -- sh -c \"{leftover}\""),
             ("ok", "run --unit ok --wait -- true"),
             ("killed", "run --unit killed --wait -- sh -c 'kill -9 $$'"),
             ("json", "--json run --unit j --wait -- sh -c 'exit 5'")]
    extra = "; ".join(in_session(env, tag, w, stderr=True) for tag, w in words)
    login = env.login("su", pam, user, script(extra=extra))
    login.wait_ready(timeout=30)
    rc, lines = tagged(login, "exit3")
    assert rc == 3, login.report()
    assert lines[-1] == "Finished with result: exit-code; main process: exit status 3", lines
    rc, lines = tagged(login, "ok")
    assert rc == 0 and lines[-1] == "Finished with result: success; main process: exit status 0"
    rc, lines = tagged(login, "killed")
    assert rc == 128 + 9, lines
    assert lines[-1] == "Finished with result: signal; main process: killed by signal 9", lines
    rc, lines = tagged(login, "json")
    document = json.loads("\n".join(lines))
    assert rc == 5 and document["unit"]["name"] == "j.service", lines
    assert document["unit"]["result"] == {"name": "j.service", "uid": user.uid, "kind": "service",
                                          "exit_status": 5, "result": "exit-code"}
    # The SIGTERM-ignoring and the setsid'd leftovers of left.service were stopped with it.
    assert units_of(daemon, user) == []
    assert "Unit left.service: main process gone, stopping the processes it left." in daemon.log()
    assert login.logout() == 0


def test_run_wait_across_a_daemon_restart_still_waits_and_exits_1(env, user, pam, daemon):
    """The daemon restarts while `run --wait` waits: the unit lives on, --wait still waits for
    it, and, its result having been in the old daemon's memory, ends with status 1."""
    login = env.login("su", pam, user,
                      script(extra=in_session(env, "wait", "run --unit w --wait -- sleep 3",
                                              stderr=True)))
    [unit] = daemon.wait_for(lambda: started_units_of(daemon, user), 10, "the unit")
    env.track(Proc.of(pid, unit["name"]) for pid in unit["pids"])
    daemon.kill()
    daemon.start()
    assert [u["name"] for u in units_of(daemon, user)] == ["w.service"]
    login.wait_ready(timeout=30)
    rc, lines = tagged(login, "wait")
    assert units_of(daemon, user) == [], "run --wait returned before the unit ended"
    assert rc == 1, login.report()
    assert "unknown" in lines[-1], lines
    assert login.logout() == 0
