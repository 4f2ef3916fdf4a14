"""Faults around the saved state (DESIGN §9): leaders that die while the daemon is down, a scope
removed behind its back, corrupt state files, a full state filesystem."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

from logoutd.errors import LogoutdError
from tests.integration.harness.checks import assert_in_scope, wait_gone, wait_session_removed
from tests.integration.harness.cleanup import Phase
from tests.integration.harness.login import script
from tests.integration.harness.procs import Proc, kill_uid, wait_for


def state_files(daemon) -> list[Path]:  # type: ignore[no-untyped-def]
    return [p for kind in ("sessions", "users", "units") for p in (daemon.runtime_dir / kind).iterdir()]


def test_leaders_die_while_the_daemon_is_down(env, user, user2, pam, daemon):
    logins, sessions, procs = [], [], []
    for u in (user, user2):
        login = env.login("su", pam, u, script("nohup", "stubborn"))
        found = login.wait_ready()
        env.track(found.values())
        sessions.append(daemon.wait_session(u.name))
        logins.append(login)
        procs += found.values()
    daemon.kill()
    for login in logins:
        assert login.logout() == 0, login.report()
    assert all(p.alive() for p in procs)
    daemon.start()
    wait_gone(env, procs, 2 + 6, "the sessions' processes")
    for session in sessions:
        wait_session_removed(env, daemon, session)
    log = daemon.log()
    assert log.count("exited while logoutd was down") == 2, daemon.log_tail()
    wait_for(lambda: not state_files(daemon) and not env.cgroups_under_user_slice(), 10,
             "state files and cgroups to go", details=env.describe)


def test_scope_removed_while_the_daemon_is_down(env, user, pam, daemon):
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    daemon.kill()
    scope = env.scope_dir(session["scope"])
    elsewhere = env.cgroup_root / "elsewhere"  # in the test subtree: cleanup kills it
    elsewhere.mkdir()
    for pid in (scope / "cgroup.procs").read_text().split():
        (elsewhere / "cgroup.procs").write_text(pid)
    scope.rmdir()
    daemon.start()
    assert f"Scope of session {session['id']} vanished while logoutd was down." in daemon.log()
    assert daemon.sessions(user.name) == []
    assert not (daemon.runtime_dir / "sessions" / f"{session['id']}.json").exists()
    assert login.logout() == 0
    wait_for(lambda: not env.cgroups_under_user_slice() and not state_files(daemon), 10,
             "the user to be collected", details=env.describe)
    assert daemon.call("status") and "Traceback" not in daemon.log()


@pytest.mark.parametrize("kind", ["sessions", "users", "units"])
def test_corrupt_state_files_are_skipped_with_a_warning(env, user, pam, daemon, kind):
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    daemon.kill()
    bad = {"garbage": "\x00\xff not json at all", "truncated": '{"id": "x9", "uid": ',
           "list": '["id", "uid"]', "wrongtypes": '{"id": "x8", "uid": "abc", "kind": 3}'}
    for name, text in bad.items():
        (daemon.runtime_dir / kind / f"{name}.json").write_text(text)
    daemon.start()
    again = daemon.wait_session(user.name)
    assert again["id"] == session["id"]
    assert_in_scope(env, again, procs.values())
    log = daemon.log()
    for name in ("garbage", "truncated", "list"):
        path = daemon.runtime_dir / kind / f"{name}.json"
        assert f"{path}: unreadable state file, ignoring it" in log, daemon.log_tail()
    assert "Ignoring unreadable saved" in log, daemon.log_tail()
    assert login.logout() == 0
    wait_gone(env, procs.values(), 6)
    wait_session_removed(env, daemon, session)
    assert "Traceback" not in daemon.log()


def _daemon_on_tiny_runtime_fs(env, start_daemon):
    """A daemon whose runtime dir is a 64 KiB tmpfs (unmounted at cleanup), started."""
    daemon = start_daemon(start=False)
    run = daemon.runtime_dir
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(run)],
                   check=True)
    env.cleanup.add(Phase.USERS, f"umount {run}",
                    lambda: subprocess.run(["umount", str(run)], check=True))
    daemon.start()
    return daemon, run


def _fill(run: Path) -> Path:
    """Fill the runtime dir's filesystem to ENOSPC with one file; that file."""
    filler = run / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"x" * 1024)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def test_full_state_filesystem(env, user, pam, start_daemon):
    daemon, run = _daemon_on_tiny_runtime_fs(env, start_daemon)
    filler = _fill(run)
    # The API names the file that could not be written; nothing is left half-made.
    leader = subprocess.Popen(["sleep", "100"], user=user.uid, group=user.gid)
    env.track([Proc.of(leader.pid, "leader")])
    with pytest.raises(LogoutdError) as caught:
        daemon.call("create_session", uid=user.uid, leader=leader.pid, service="test")
    assert "Cannot save state file" in caught.value.message, caught.value.message
    assert str(run) in caught.value.message and "No space left" in caught.value.message
    assert not list(run.rglob(".*.tmp"))
    leader.kill()
    leader.wait()
    # A login still succeeds (the hook never fails logins); the daemon keeps serving.
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    assert daemon.sessions(user.name) == [] and daemon.running()
    assert login.logout() == 0
    kill_uid(user.uid)  # the untracked login's job
    # Space again: logins are tracked and cleaned up as usual.
    filler.unlink()
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    assert login.logout() == 0
    wait_gone(env, procs.values(), 6)
    wait_session_removed(env, daemon, session)
    wait_for(lambda: not env.cgroups_under_user_slice(), 10, "the user to be collected",
             details=env.describe)
    assert daemon.running() and "Traceback" not in daemon.log()


def test_full_state_filesystem_at_logout_still_kills(env, user, pam, start_daemon):
    """Issue 11: the stop's state save fails (ENOSPC); the kill goes on, the save is retried."""
    daemon, run = _daemon_on_tiny_runtime_fs(env, start_daemon)
    login = env.login("su", pam, user, script("nohup", "stubborn"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    filler = _fill(run)
    assert login.logout() == 0
    # nohup goes at SIGTERM, stubborn at SessionStopTimeoutSec=2s (base drop-in) + slack.
    wait_gone(env, procs.values(), 2 + 4, "the session's jobs, with the state filesystem full")
    log = daemon.log()
    assert f"Session {session['id']}: cannot save its state" in log, daemon.log_tail()
    assert "No space left on device" in log
    assert log.count(f"Session {session['id']}: cannot save its state") == 1, daemon.log_tail()
    wait_session_removed(env, daemon, session)
    filler.unlink()
    wait_for(lambda: not env.cgroups_under_user_slice() and not state_files(daemon), 15,
             "the user to be collected", details=env.describe)
    assert daemon.running() and "Traceback" not in daemon.log()
