"""Fail safe (DESIGN §10): a login is tracked even when the daemon is stopped, hung or not running.

The hook gives up after its --timeout (0.5 s here), puts the leader into a session scope of its
own under the test's cgroup subtree, records it in RUNTIME_DIR/hook/ID.json and lets the login go
on; the daemon adopts the scope when it answers again, and the login's `nohup` job is killed at
its logout, as in any session.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness.checks import assert_in_scope, wait_gone, wait_session_removed
from tests.integration.harness.login import script
from tests.integration.harness.procs import Proc

TIMEOUT = 0.5  # the hook's --timeout in these tests' PAM lines


def hook_records(env: Any) -> dict[str, dict[str, Any]]:
    hook_dir: Path = env.runtime_dir / "hook"
    if not hook_dir.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in hook_dir.glob("*.json")}


def session_scopes(env: Any, uid: int) -> list[str]:
    slice_dir: Path = env.user_slice() / f"user-{uid}.slice"
    return sorted(p.name for p in slice_dir.glob("session-*.scope")) if slice_dir.is_dir() else []


def tracked_by_the_hook(env: Any, user: Any, procs: dict[str, Proc]) -> dict[str, Any]:
    """Exactly one record, for this user, its scope holding the login's processes."""
    records = hook_records(env)
    assert len(records) == 1, records
    [record] = records.values()
    assert record["uid"] == user.uid and record["user"] == user.name, record
    assert record["scope"] == f"user.slice/user-{user.uid}.slice/session-{record['id']}.scope"
    assert re.fullmatch(r"[A-Za-z0-9]+", record["id"]), record
    assert_in_scope(env, record, procs.values())
    leader = Proc.of(record["leader"], "leader")
    assert leader.cgroup() == env.rel(record["scope"]), record
    assert session_scopes(env, user.uid) == [f"session-{record['id']}.scope"]
    return record


def wait_adopted(env: Any, daemon: Any, user: Any, record: dict[str, Any]) -> dict[str, Any]:
    session = daemon.wait_session(user.name, id=record["id"])
    assert session["scope"] == record["scope"] and session["leader"] == record["leader"], session
    daemon.wait_for(lambda: hook_records(env) == {}, 5, "the hook's record to be removed")
    assert session_scopes(env, user.uid) == [f"session-{record['id']}.scope"]
    assert f"New session {record['id']} of user {user.name}, adopted from the PAM hook" in daemon.log()
    return session


@pytest.mark.parametrize("via", ["su", "ssh"])
def test_daemon_stopped_during_login(env, user, daemon, via):
    """SIGSTOP: the hook times out, tracks the login itself; SIGCONT: the daemon adopts it (and
    reads the request the hook gave up on: still one scope, one session); logout kills the job."""
    pam = env.pam(timeout=TIMEOUT)
    assert daemon.popen is not None
    os.kill(daemon.popen.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        login = env.login(via, pam, user, script("nohup"))
        procs = login.wait_ready()
        env.track(procs.values())
        took = time.monotonic() - t0
        record = tracked_by_the_hook(env, user, procs)
        assert record["why"] == f"no answer within {TIMEOUT:g} s", record
    finally:
        os.kill(daemon.popen.pid, signal.SIGCONT)
    print(f"\n{via} login with the daemon stopped: ready after {took:.2f} s "
          f"(hook timeout {TIMEOUT:g} s)")
    session = wait_adopted(env, daemon, user, record)
    # The late create_session (read after SIGCONT) found the leader in the adopted scope.
    daemon.wait_for(lambda: f"Leader {record['leader']} already has session {record['id']}:"
                    in daemon.log(), 5, "the late create_session to be answered")
    assert len(daemon.sessions(user.name)) == 1
    assert_in_scope(env, session, procs.values())
    assert login.logout() == 0, login.report()
    wait_gone(env, procs.values(), 10, "the nohup job")
    wait_session_removed(env, daemon, session)


def test_daemon_not_running_during_login_then_started(env, user, start_daemon):
    daemon = start_daemon(start=False)
    (env.runtime_dir / "cgroup-root").unlink()
    daemon.start()  # writes cgroup-root itself
    assert (env.runtime_dir / "cgroup-root").read_text() == f"{env.cgroup_root.resolve()}\n"
    assert daemon.stop() == 0
    pam = env.pam(timeout=TIMEOUT)
    t0 = time.monotonic()
    login = env.login("ssh", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    took = time.monotonic() - t0
    record = tracked_by_the_hook(env, user, procs)
    assert "root.sock" in record["why"], record  # refused at once: no timeout to wait for
    print(f"\nssh login with no daemon: ready after {took:.2f} s")
    daemon.start()
    session = wait_adopted(env, daemon, user, record)
    assert login.logout() == 0, login.report()
    wait_gone(env, procs.values(), 10, "the nohup job")
    wait_session_removed(env, daemon, session)


def test_logout_while_daemon_down_killed_after_start(env, user, start_daemon):
    daemon = start_daemon(start=False)
    pam = env.pam(timeout=TIMEOUT)
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    record = tracked_by_the_hook(env, user, procs)
    assert login.logout() == 0, login.report()
    time.sleep(0.5)
    assert all(p.alive() for p in procs.values())  # nobody is there to kill it yet
    daemon.start()
    wait_gone(env, procs.values(), 10, "the nohup job")
    wait_session_removed(env, daemon, {"id": record["id"], "scope": record["scope"]})
    assert hook_records(env) == {} and daemon.sessions() == []
    assert "Leader of session" in daemon.log() and "exited while logoutd was down" in daemon.log()
