"""The daemon never waits on a user: `run --unit` starts whose child (acting as the user) would
block or hang. A FIFO at the log path, a child stuck at a step past the spawn deadline
(LOGOUTD_STALL_AT fault injection), symlinks at the log or its directory, and too many starts
at once. Meanwhile root's `status` answers within 1 s, and a fresh ssh login of another user is
tracked and its nohup job killed at its logout."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from logoutd.system.spawn import SPAWN_DEADLINE
from tests.integration.harness.checks import wait_gone
from tests.integration.harness.ctl import answer, call_as, ctl_words
from tests.integration.harness.daemon import Daemon
from tests.integration.harness.login import script
from tests.integration.harness.procs import Proc, wait_for
from tests.integration.harness.users import TestUser
from tests.integration.harness.victim import root_status_seconds, victim_login


def units_of(daemon: Daemon, user: TestUser) -> list[dict[str, Any]]:
    return [u for u in daemon.call("list_units")["units"] if u["uid"] == user.uid]


def assert_no_traceback(daemon: Daemon) -> None:
    assert "Traceback" not in daemon.log(), daemon.log_tail(80)


def test_a_fifo_at_the_log_path_fails_at_once_and_nobody_waits(env, user, user2, pam,
                                                               start_daemon):
    """The attack of issue 11: mkfifo at the unit's log path, then `run --unit`. It used to
    freeze the daemon; now the start fails at once naming the path, and while it runs root
    is answered and another user's login is tracked."""
    daemon = start_daemon()
    sshd = env.sshd(pam)
    runtime = daemon.user_runtime_root / str(user.uid)
    ctl = ctl_words(env)
    # fifo: nobody reads it (a blocking open would wait forever); held: a reader holds it open
    # (an open succeeds, so only the regular-file check refuses it).
    attack = (
        f"rt={runtime}; d=$rt/logoutd; mkdir -p $d && mkfifo $d/fifo.service.log "
        "$d/held.service.log; "
        "sleep 1000 3<>$d/held.service.log >/dev/null 2>&1 </dev/null & _p=$!; "
        "_comm $_p sleep; echo \"PID reader $_p\"; "
        "( for n in fifo held; do t0=$EPOCHREALTIME; "
        f"{ctl} run --unit $n -- sleep 100 >$rt/$n.out 2>&1; "
        'echo "RC $? $t0 $EPOCHREALTIME" >>$rt/$n.out; done ) >/dev/null 2>&1 </dev/null & _a=$!'
    )
    login = sshd.login(user, script(extra=attack))
    procs = login.wait_ready()
    env.track(procs.values())
    daemon.wait_session(user.name)
    # The checks below run once the FIFO start is under way: it has returned (fixed), or it
    # has had 2 s to freeze the daemon (as it did before).
    fifo_out = runtime / "fifo.out"
    wait_for(fifo_out.exists, 10, "the attacker's run --unit fifo to start")
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and "RC " not in fifo_out.read_text():
        time.sleep(0.05)

    status_seconds = [root_status_seconds(daemon)]
    victim_seconds = victim_login(env, daemon, pam, user2).login_seconds
    status_seconds.append(root_status_seconds(daemon))
    for name in ("fifo", "held"):
        out = runtime / f"{name}.out"
        wait_for(lambda out=out: out.exists() and "RC " in out.read_text(), 15,
                 f"the attacker's run --unit {name} to return", details=daemon.log_tail)
        lines = out.read_text().splitlines()
        rc, start, end = lines[-1].split()[1:]
        path = f"{runtime}/logoutd/{name}.service.log"
        assert lines[:-1] == [f"Cannot open the log {path} as user {user.name}: it is not a "
                              "regular file."], lines
        assert int(rc) == 1 and float(end) - float(start) < 2.0, lines
        print(f"run --unit {name} with a FIFO as its log: failed in "
              f"{float(end) - float(start):.3f} s")
    print(f"root status: {max(status_seconds):.3f} s; victim ssh login ready in "
          f"{victim_seconds:.2f} s")
    assert max(status_seconds) < 1.0, status_seconds
    assert units_of(daemon, user) == []
    assert_no_traceback(daemon)
    assert login.logout() == 0, login.report()


def test_a_child_stuck_past_the_deadline_is_killed_and_named(env, user, user2, pam,
                                                             start_daemon):
    daemon = start_daemon(start=False)
    daemon.start(env={"LOGOUTD_STALL_AT": "spawn.child.cwd"})
    daemon.call("set_linger", uid=user.uid, enable=True)
    t0 = time.monotonic()
    child = call_as(env, user, "start_unit", argv=["sleep", "100"], name="stuck")
    [unit] = daemon.wait_for(lambda: units_of(daemon, user) or None, 5, "the starting unit")
    assert unit["state"] == "starting" and unit["main_pid"], unit
    stuck = Proc.of(unit["main_pid"], "stuck child")
    env.track([stuck])
    status_seconds = [root_status_seconds(daemon)]
    env.sshd(pam)
    victim = victim_login(env, daemon, pam, user2)
    victim_seconds, victim_ready_at = victim.login_seconds, victim.ready_at
    status_seconds.append(root_status_seconds(daemon))
    result = answer(child)
    assert result == {"ok": False, "code": "failed", "seconds": result["seconds"], "message": (
        f"Starting stuck.service as user {user.name} did not finish within "
        f"{SPAWN_DEADLINE:g} s (stuck entering the working directory {user.home}); it was "
        "killed.")}, result
    assert SPAWN_DEADLINE - 0.5 < result["seconds"] < SPAWN_DEADLINE + 2.0, result
    print(f"stuck start answered after {result['seconds']:.2f} s; root status "
          f"{max(status_seconds):.3f} s meanwhile; victim login ready in {victim_seconds:.2f} s")
    assert max(status_seconds) < 1.0, status_seconds
    assert victim_ready_at < t0 + result["seconds"], "the victim's login came after the answer"
    assert not stuck.alive(), "the stuck child was not killed"
    assert not (env.cgroup_root / unit["cgroup"]).exists(), "the unit's cgroup is still there"
    assert units_of(daemon, user) == []
    log = daemon.log()
    assert "Starting stuck.service as user" in log and "killed it" in log, daemon.log_tail()
    assert "Unit stuck.service of user" in log and "did not start" in log, daemon.log_tail()
    assert_no_traceback(daemon)
    # The stall is at cwd only for this daemon: the next unit of the user starts normally
    # (the deadline leaves nothing behind that would refuse it).
    daemon.stop()
    daemon.start()
    ok = answer(call_as(env, user, "start_unit", argv=["sleep", "100"], name="stuck"))
    assert ok["ok"] and ok["result"]["unit"]["state"] == "active", ok
    env.track([Proc.of(ok["result"]["unit"]["main_pid"], "stuck.service")])


def test_starts_in_flight_are_capped_and_each_has_its_own_deadline(env, user, start_daemon):
    daemon = start_daemon(start=False)
    daemon.start(env={"LOGOUTD_STALL_AT": "spawn.child.exec"})
    daemon.call("set_linger", uid=user.uid, enable=True)
    children = [call_as(env, user, "start_unit", argv=["sleep", "100"], name=f"s{i}")
                for i in range(4)]
    units = daemon.wait_for(lambda: len(units_of(daemon, user)) == 4 and units_of(daemon, user),
                            10, "four starting units")
    assert {u["state"] for u in units} == {"starting"}, units
    stuck = [Proc.of(u["main_pid"], u["name"]) for u in units]
    env.track(stuck)
    refused = answer(call_as(env, user, "start_unit", argv=["true"], name="fifth"))
    assert refused == {"ok": False, "code": "limits_exceeded", "seconds": refused["seconds"],
                       "message": f"Too many units starting for user {user.name} (at most 4 at "
                                  "a time): try again once they have started."}, refused
    assert refused["seconds"] < 1.0 and root_status_seconds(daemon) < 1.0
    results = [answer(c) for c in children]
    for i, result in enumerate(results):
        assert not result["ok"] and result["message"].startswith(
            f"Starting s{i}.service as user {user.name} did not finish within "), result
        assert "(stuck executing 'sleep'); it was killed." in result["message"], result
    wait_gone(env, stuck, 5, "the stuck children")
    assert units_of(daemon, user) == []
    assert_no_traceback(daemon)


def test_symlinks_at_the_log_or_its_directory_are_refused(env, user, start_daemon):
    daemon = start_daemon()
    daemon.call("set_linger", uid=user.uid, enable=True)
    runtime = daemon.user_runtime_root / str(user.uid)

    def as_user(command: str) -> None:
        subprocess.run(["sh", "-c", command], user=user.uid, group=user.gid, extra_groups=[],
                       check=True, cwd="/")

    # A symlink at the log path, to a file of the user's: not followed, nothing written.
    as_user(f"mkdir -p {runtime}/logoutd {runtime}/elsewhere && : >{runtime}/target && "
            f"ln -s {runtime}/target {runtime}/logoutd/link.service.log")
    result = answer(call_as(env, user, "start_unit", argv=["echo", "hello"], name="link"))
    log = f"{runtime}/logoutd/link.service.log"
    assert result["message"] == (f"Cannot open the log {log} as user {user.name}: it is a "
                                 "symbolic link."), result
    # A symlink as the log's directory: not followed, no log created where it points.
    as_user(f"rm -r {runtime}/logoutd && ln -s {runtime}/elsewhere {runtime}/logoutd")
    result = answer(call_as(env, user, "start_unit", argv=["echo", "hello"], name="dir"))
    log = f"{runtime}/logoutd/dir.service.log"
    assert result["message"] == (f"Cannot open the log {log} as user {user.name}: its "
                                 f"directory {runtime}/logoutd is a symbolic link."), result
    assert (runtime / "target").read_text() == ""
    assert list((runtime / "elsewhere").iterdir()) == []
    # Control: with a real directory, the same start works and its log is a regular file.
    as_user(f"rm {runtime}/logoutd")
    result = answer(call_as(env, user, "start_unit", argv=["echo", "hello"], name="dir"))
    assert result["ok"], result
    logfile = Path(log)
    wait_for(lambda: logfile.exists() and logfile.read_text() == "hello\n", 5, "the unit's log")
    assert not logfile.is_symlink() and logfile.stat().st_uid == user.uid
    daemon.wait_for(lambda: not units_of(daemon, user), 5, "the finished unit to go")
    assert_no_traceback(daemon)


def test_failures_before_exec_keep_their_messages(env, user, start_daemon):
    """The report is read differently now; what it says is not: one line, the right code."""
    daemon = start_daemon()
    daemon.call("set_linger", uid=user.uid, enable=True)
    cases = [
        ({"argv": ["no-such-command-x"]}, "invalid_argument",
         f"Cannot run 'no-such-command-x' as user {user.name}: No such file or directory."),
        ({"argv": ["true"], "cwd": "/no/such/dir"}, "invalid_argument",
         f"Cannot use working directory '/no/such/dir' as user {user.name}: No such file or "
         "directory."),
        ({"argv": ["true"], "cwd": "/root"}, "invalid_argument",
         f"Cannot use working directory '/root' as user {user.name}: Permission denied."),
    ]
    for params, code, message in cases:
        result = answer(call_as(env, user, "start_unit", **params))
        assert (result["ok"], result.get("code"), result.get("message")) == (False, code, message)
        assert result["seconds"] < 2.0, result
    assert units_of(daemon, user) == []
    assert_no_traceback(daemon)
