"""`logoutd --dbus` driven by a root D-Bus client of our own (harness/login1_client.py, dbus-fast)
instead of pam_systemd, for what a PAM stack cannot stage on demand: the reference FIFO held by a
process other than the leader (and surviving a daemon restart), a CreateSession whose sender is
gone before it is handled, and another owner of org.freedesktop.login1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.integration.harness import cgroups
from tests.integration.harness.bus import Client
from tests.integration.harness.checks import wait_gone, wait_session_removed
from tests.integration.harness.cleanup import Phase
from tests.integration.harness.procs import Proc, signal_proc, status_field, wait_for

LOGIN1 = "org.freedesktop.login1"
# A reference FIFO's hang-up stops the session like a logout; the leader below ignores SIGTERM,
# so the session stays "closing" (with its stop cause visible) until this SIGKILL deadline.
STOP_TIMEOUT = 5.0
CONFIG = f"[Logoutd]\nSessionStopTimeoutSec={STOP_TIMEOUT:g}s\n"
TERM_HUP = 0x4001  # SigIgn bits of SIGHUP and SIGTERM


def _stubborn_leader(env, user) -> Proc:
    """A process of `user` ignoring SIGTERM and SIGHUP, to be a session's leader."""
    popen = subprocess.Popen(
        ["sh", "-c", 'trap "" TERM HUP; while :; do sleep 1; done'],
        user=user.uid, group=user.gid, extra_groups=[], cwd="/", stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={"PATH": "/usr/bin:/bin"})
    proc = Proc.of(popen.pid, "leader")
    env.track([proc])
    env.cleanup.add(Phase.CGROUPS, "reap the leader", lambda: popen.wait(timeout=10))

    def ignoring() -> bool:
        mask = status_field(proc.pid, "SigIgn")
        return mask is not None and int(mask, 16) & TERM_HUP == TERM_HUP
    wait_for(ignoring, 10, "the leader to ignore SIGTERM and SIGHUP")
    return proc


def _session_or_none(daemon, sid: str):
    return next((s for s in daemon.sessions() if s["id"] == sid), None)


def _wait_stop_cause(daemon, sid: str, cause: str):
    def stopping():
        s = _session_or_none(daemon, sid)
        assert s is not None, f"session {sid} vanished before it was seen closing"
        return s if s["stop_cause"] is not None else None
    session = daemon.wait_for(stopping, STOP_TIMEOUT - 1, f"session {sid} to stop")
    assert (session["state"], session["stop_cause"]) == ("closing", cause), session
    return session


def _create(env, bus, daemon, user, leader: Proc | None):
    """CreateSession from a root client that keeps the reply's fd; returns client, reply."""
    client = Client(bus, env.cleanup, "create", str(user.uid),
                    str(leader.pid if leader else 0))
    reply = client.read()
    assert "error" not in reply, reply
    sid = reply["id"]
    assert reply == {
        "id": sid, "path": f"/org/freedesktop/login1/session/{_label(sid)}",
        "runtime_path": str(daemon.user_runtime_root / str(user.uid)), "fd": reply["fd"],
        "fd_target": str(daemon.runtime_dir / "login1" / f"{sid}.ref"), "fd_index": 0,
        "n_fds": 1, "uid": user.uid, "seat": "", "vtnr": 0, "existing": False,
        "signature": "soshusub",
    }, reply
    return client, reply


def _label(sid: str) -> str:
    from tests.integration.harness.loginctl import bus_label
    return bus_label(sid)


@pytest.mark.parametrize("how", ["client-killed", "closed-after-restart", "closed-while-down"])
def test_reference_fifo_hangup_ends_session(env, user, bus, how):
    """The session lives as long as someone holds the FIFO's write end, whoever the leader is;
    a daemon restart reopens the FIFO, and a hang-up missed while it was down still counts."""
    daemon = env.daemon(CONFIG, dbus=bus)
    leader = _stubborn_leader(env, user)
    client, reply = _create(env, bus, daemon, user, leader)
    sid = reply["id"]
    session = daemon.wait_session(user.name)
    assert session["id"] == sid and session["leader"] == leader.pid, session
    assert session["service"] == "logoutd-test-client" and session["class"] == "background"
    assert leader.cgroup() == env.rel(session["scope"]), leader.describe()
    fifo = daemon.runtime_dir / "login1" / f"{sid}.ref"
    assert fifo.is_fifo()

    # One session per leader: a second CreateSession for the same leader is busy.
    again = Client(bus, env.cleanup, "create", str(user.uid), str(leader.pid)).read()
    assert again["error"] == "org.freedesktop.login1.SessionBusy", again

    if how == "client-killed":
        client.kill()
    elif how == "closed-after-restart":
        daemon.restart()
        kept = daemon.wait_session(user.name)
        assert (kept["id"], kept["leader"], kept["state"]) == (sid, leader.pid, "active"), kept
        assert kept["stop_cause"] is None and fifo.is_fifo(), kept
        client.send("close")
        assert client.read() == {"closed": reply["fd"]}
    else:
        assert daemon.stop() == 0, daemon.log_tail()
        client.kill()
        assert leader.alive()
        daemon.start()

    _wait_stop_cause(daemon, sid, "reference-closed")
    assert leader.alive(), "SIGTERM is ignored: the leader lives until SessionStopTimeoutSec="
    wait_gone(env, [leader], STOP_TIMEOUT + 10, "the leader (SIGKILL)")
    wait_session_removed(env, daemon, session)
    assert not fifo.exists()
    assert daemon.sessions() == []


def test_create_session_with_leader_0_makes_the_caller_leader(env, user, bus, dbus_daemon):
    """pam_systemd always sends leader 0: the caller's pid (from the bus) becomes the leader, and
    the caller's exit ends the session."""
    daemon = dbus_daemon
    client, reply = _create(env, bus, daemon, user, None)
    session = daemon.wait_session(user.name)
    assert session["id"] == reply["id"] and session["leader"] == client.proc.pid, session
    assert client.proc.cgroup() == env.rel(session["scope"])
    client.send("release")
    assert client.read() == {"released": reply["id"]}
    assert client.close() == 0
    wait_session_removed(env, daemon, session)
    assert daemon.sessions() == []


def test_create_session_with_pidfd_makes_the_pidfds_process_leader(env, user, bus, dbus_daemon):
    """logind 255's CreateSessionWithPIDFD, as pam_systemd >= 255 sends it (a pidfd of the
    calling process): that process is the leader, in the scope; its death ends the session.
    Flags other than 0 are refused and create nothing."""
    daemon = dbus_daemon
    bad = Client(bus, env.cleanup, "create-pidfd", str(user.uid), "2")
    refused = bad.read()
    assert refused["error"] == "org.freedesktop.DBus.Error.InvalidArgs", refused
    assert "Flags must be zero" in refused["message"], refused
    assert daemon.sessions() == [] and bad.close() == 0

    client = Client(bus, env.cleanup, "create-pidfd", str(user.uid))
    reply = client.read()
    assert reply.get("signature") == "soshusub" and reply["n_fds"] == 1, reply
    session = daemon.wait_session(user.name)
    assert session["id"] == reply["id"] and session["leader"] == client.proc.pid, session
    assert client.proc.cgroup() == env.rel(session["scope"])
    client.kill()
    wait_session_removed(env, daemon, session)
    assert daemon.sessions() == []


def test_create_session_from_a_vanished_sender_creates_nothing(env, user, bus, dbus_daemon):
    """CreateSession queued while logoutd is stopped, its sender gone before logoutd reads it:
    no session, no cgroup, no runtime dir for the user; the daemon keeps serving."""
    daemon = dbus_daemon
    monitor = bus.monitor(env.cleanup)
    user_slice = env.user_slice() / f"user-{user.uid}.slice"
    runtime = daemon.user_runtime_root / str(user.uid)
    assert daemon.popen is not None
    os.kill(daemon.popen.pid, signal.SIGSTOP)
    try:
        client = Client(bus, env.cleanup, "fire", str(user.uid))
        sent = client.read()
        [call] = monitor.wait_calls("CreateSession", sender=sent["unique_name"])
        assert call.uint32s()[:2] == [user.uid, 0], call
        client.kill()
        wait_gone(env, [client.proc], 5, "the client")
        wait_for(lambda: bus.busctl("status", sent["unique_name"]).returncode != 0, 5,
                 "the bus to forget the client")
    finally:
        os.kill(daemon.popen.pid, signal.SIGCONT)

    # logoutd did handle it: it answered (into the void) with an error.
    answer = monitor.wait_reply(call)
    assert answer.kind == "error" and answer.fields.get("sender") != "org.freedesktop.DBus", (
        str(answer))
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert daemon.sessions() == [], daemon.details()
        assert not user_slice.exists() and not runtime.exists(), env.describe()
        time.sleep(0.1)
    assert [u["uid"] for u in daemon.users()] == []
    # Still serving: a live caller gets its session.
    client, reply = _create(env, bus, daemon, user, None)
    assert [s["id"] for s in daemon.sessions()] == [reply["id"]]
    assert client.close() == 0


def test_refuses_to_start_beside_another_owner(env, bus):
    """Someone else owns org.freedesktop.login1 (systemd-logind, elogind, ...): `logoutd --dbus`
    exits non-zero at once naming the name and the owner, and takes nothing over."""
    rival = Client(bus, env.cleanup, "own", LOGIN1)
    owned = rival.read()
    assert owned["owned"] == 1, owned  # DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
    daemon = env.daemon(dbus=bus, start=False)
    t0 = time.monotonic()
    daemon.start(wait=False)
    assert daemon.popen is not None
    try:
        rc = daemon.popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("logoutd --dbus kept running beside another owner:\n"
                             + daemon.log_tail()) from None
    elapsed = time.monotonic() - t0
    assert rc != 0, daemon.log_tail()
    assert elapsed < 10, f"took {elapsed:.1f} s to give up"
    errors = [line for line in daemon.log().splitlines() if line.startswith("logoutd: ")]
    assert len(errors) == 1, daemon.log()
    assert LOGIN1 in errors[0] and owned["unique_name"] in errors[0], errors
    assert f"pid {rival.proc.pid}" in errors[0], errors

    assert bus.name_owner_pid(LOGIN1) == rival.proc.pid
    assert not env.socket.exists(), "the API socket was created"
    assert not (daemon.runtime_dir / "login1").exists() or not any(
        (daemon.runtime_dir / "login1").iterdir())
    assert cgroups.subdirs(env.user_slice()) == []
    signal_proc(rival.proc, signal.SIGTERM)


def test_without_dbus_fast_refuses_to_start_and_says_what_to_install(env, bus):
    """`logoutd --dbus` where dbus-fast cannot be imported: one line naming the package and the
    extra to install, a non-zero exit, and nothing served (no socket, no name on the bus)."""
    shadow = env.tmp / "no-dbus-fast" / "dbus_fast"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('dbus_fast hidden by the test')\n")
    daemon = env.daemon(dbus=bus, start=False)
    daemon.start(wait=False, env={"PYTHONPATH": str(shadow.parent)})
    assert daemon.popen is not None
    try:
        rc = daemon.popen.wait(timeout=20)
    except subprocess.TimeoutExpired:
        raise AssertionError("logoutd --dbus kept running without dbus-fast:\n"
                             + daemon.log_tail()) from None
    assert rc != 0, daemon.log_tail()
    errors = [line for line in daemon.log().splitlines() if line.startswith("logoutd: ")]
    assert len(errors) == 1, daemon.log()
    assert "--dbus needs the dbus-fast package" in errors[0], errors
    assert "dbus_fast hidden by the test" in errors[0], errors
    assert "pip install 'logoutd[dbus]'" in errors[0], errors
    assert not env.socket.exists(), "the API socket was created"
    assert bus.name_owner_pid(LOGIN1) is None


def test_status_tells_where_login1_is_served(env, bus, dbus_daemon):
    from tests.integration.harness.ctl import ctl

    result = ctl(env, "status")
    assert result.rc == 0, result
    assert f"\t   D-Bus: org.freedesktop.login1 on {bus.address} (connected)" in result.lines, result
    dbus = ctl(env, "status", "--json").json()["status"]["dbus"]
    assert dbus == {"name": "org.freedesktop.login1", "address": bus.address, "connected": True,
                    "reference_fifos": 0}
