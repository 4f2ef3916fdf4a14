"""Stock pam_systemd 252 against `logoutd --dbus`: real ssh logins through a PAM stack whose only
session module of interest is `pam_systemd.so` (no logoutd hook), on a private system bus.

pam_systemd calls CreateSession at login and ReleaseSession at logout; logoutd must give the
login its scope, XDG_SESSION_ID and XDG_RUNTIME_DIR, end the session (and kill what was left)
at logout or when the PAM process drops the reference FIFO, and answer SessionBusy to a `su`
inside the session.  dbus-monitor records what pam_systemd really sent and was answered.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal

import pytest

from tests.integration.harness import bus as buses
from tests.integration.harness.checks import assert_in_scope, wait_gone, wait_session_removed
from tests.integration.harness.login import script
from tests.integration.harness.procs import Proc, descendants, signal_proc, status_field, wait_for

SHOW_ENV = ('echo "PID shell $$"; '
            'for _v in XDG_SESSION_ID XDG_RUNTIME_DIR XDG_SESSION_TYPE XDG_SESSION_CLASS; do '
            'eval "echo ENV $_v=\\${$_v}"; done; '
            '[ -n "$XDG_RUNTIME_DIR" ] && stat -c "RUNTIME %u %a %F" "$XDG_RUNTIME_DIR"')


def _open_files(pid: int) -> list[str]:
    fds, out = f"/proc/{pid}/fd", []
    for fd in os.listdir(fds):
        with contextlib.suppress(FileNotFoundError):
            out.append(os.readlink(f"{fds}/{fd}"))
    return out


def _env_lines(lines: list[str]) -> dict[str, str]:
    return dict(line[4:].split("=", 1) for line in lines if line.startswith("ENV "))


def _create_call_for(monitor, uid: int, service: str, timeout: float = 10.0):
    def matching():
        return [c for c in monitor.calls("CreateSession", destination="org.freedesktop.login1")
                if c.uint32s()[:1] == [uid] and c.strings()[:1] == [service]]
    return wait_for(matching, timeout, f"CreateSession(uid {uid}, service {service})",
                    details=lambda: monitor.text()[-6000:])


def test_ssh_login_through_pam_systemd(env, user, systemd_pam, bus, dbus_daemon):
    daemon = dbus_daemon
    monitor = bus.monitor(env.cleanup)
    login = env.login("ssh", systemd_pam, user, script("nohup", "daemon", extra=SHOW_ENV),
                      bus=bus)
    procs = login.wait_ready()
    env.track(procs.values())
    assert set(procs) == {"nohup", "daemon", "shell"}, login.report()

    session = daemon.wait_session(user.name)
    sid = session["id"]
    runtime = daemon.user_runtime_root / str(user.uid)
    # What pam_systemd put into the login's environment, from logoutd's reply.
    assert _env_lines(login.lines) == {
        "XDG_SESSION_ID": sid, "XDG_RUNTIME_DIR": str(runtime),
        "XDG_SESSION_TYPE": "tty", "XDG_SESSION_CLASS": "user",
    }, login.report()
    assert f"RUNTIME {user.uid} 700 directory" in login.lines, login.report()

    # The session as logoutd knows it: pam_systemd's arguments, the sshd PAM process as leader.
    assert session["uid"] == user.uid and session["service"] == systemd_pam.name, session
    assert (session["type"], session["class"]) == ("tty", "user"), session
    assert session["remote_host"] == "127.0.0.1" and session["state"] == "active", session
    assert session["scope"] == f"user.slice/user-{user.uid}.slice/session-{sid}.scope", session
    assert_in_scope(env, session, procs.values())
    leader = Proc.of(session["leader"], "leader")
    sshd = env.sshd(systemd_pam, bus)
    assert leader.pid in descendants(sshd.proc.pid), (session, descendants(sshd.proc.pid))
    assert status_field(leader.pid, "Uid").split()[0] == "0"  # the privileged PAM process
    assert leader.cgroup() == env.rel(session["scope"])

    # On the bus: one CreateSession (leader 0: "the caller"), answered with this session and
    # a file descriptor (the reference FIFO).
    [create] = _create_call_for(monitor, user.uid, systemd_pam.name)
    assert create.uint32s()[:2] == [user.uid, 0], create
    reply = monitor.wait_reply(create)
    assert reply.kind == "method return", reply
    assert reply.strings()[:2] == [sid, str(runtime)], reply
    assert "file descriptor" in reply.body, reply
    assert (daemon.runtime_dir / "login1" / f"{sid}.ref").exists()

    assert login.logout() == 0, login.report()
    # pam_systemd's close: ReleaseSession(id) on a new connection.
    [release] = monitor.wait_calls("ReleaseSession", where=lambda m: m.strings() == [sid])
    assert monitor.wait_reply(release).kind == "method return"
    wait_gone(env, procs.values(), 5, "nohup job, setsid daemon and shell")
    wait_session_removed(env, daemon, session)
    assert daemon.sessions() == []
    # UserStopDelaySec=0: the user goes too, and with it the runtime dir and the FIFO.
    wait_for(lambda: not runtime.exists(), 10, f"{runtime} to be removed", details=env.describe)
    assert not (daemon.runtime_dir / "login1" / f"{sid}.ref").exists()


def test_su_inside_ssh_session_is_busy(env, user, user2, systemd_pam, bus, dbus_daemon):
    """`su - other` inside an ssh session: pam_systemd's CreateSession gets SessionBusy, which it
    takes as success; su works, no second session, the inner shell stays in the outer scope."""
    if not buses.setuid_programs_reach(bus):
        pytest.skip(f"{buses.RUN_DBUS} does not exist: setuid su ignores DBUS_SYSTEM_BUS_ADDRESS "
                    "and cannot be pointed at the private bus")
    daemon = dbus_daemon
    monitor = bus.monitor(env.cleanup)
    inner = shlex.quote(script("nohup", extra=SHOW_ENV.replace("PID shell", "PID innershell")))
    login = env.login("ssh", systemd_pam, user, f"su - {user2.name} -c {inner}", bus=bus)
    procs = login.wait_ready()
    env.track(procs.values())

    [session] = daemon.sessions()
    assert session["user"] == user.name, session
    # su's own CreateSession, for user2, refused as busy; pam_systemd then sets nothing.
    [create] = _create_call_for(monitor, user2.uid, "su-l")
    reply = monitor.wait_reply(create)
    assert (reply.kind, reply.fields.get("error_name")) == (
        "error", "org.freedesktop.login1.SessionBusy"), reply
    assert _env_lines(login.lines) == {
        "XDG_SESSION_ID": "", "XDG_RUNTIME_DIR": "", "XDG_SESSION_TYPE": "",
        "XDG_SESSION_CLASS": ""}, login.report()
    assert int(status_field(procs["innershell"].pid, "Uid").split()[0]) == user2.uid
    assert_in_scope(env, session, procs.values())
    assert [s["id"] for s in daemon.sessions()] == [session["id"]]
    assert [u["uid"] for u in daemon.users()] == [user.uid]

    assert login.logout() == 0, login.report()
    wait_gone(env, procs.values(), 10, "inner processes")
    wait_session_removed(env, daemon, session)
    assert daemon.sessions() == []


def test_killed_pam_process_ends_session(env, user, systemd_pam, bus, dbus_daemon):
    """sshd's privileged PAM process SIGKILLed: no ReleaseSession ever comes, but its reference
    FIFO (and its death as leader) end the session and the leftovers die."""
    daemon = dbus_daemon
    monitor = bus.monitor(env.cleanup)
    login = env.login("ssh", systemd_pam, user, script("nohup", "daemon"), bus=bus)
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    assert_in_scope(env, session, procs.values())
    leader = Proc.of(session["leader"], "sshd [priv]")

    signal_proc(leader, signal.SIGKILL)
    wait_gone(env, [leader], 5, "the PAM process")
    wait_gone(env, procs.values(), 10, "nohup job and setsid daemon")
    wait_session_removed(env, daemon, session)
    login.wait(timeout=20)  # the connection died with it
    assert monitor.calls("ReleaseSession") == [], "nobody was left to call ReleaseSession"
    assert daemon.sessions() == []


@pytest.mark.parametrize("logout_while_down", [False, True], ids=["logout-after", "logout-during"])
def test_daemon_crash_and_restart_during_ssh_session(env, user, systemd_pam, bus, dbus_daemon,
                                                     logout_while_down):
    """logoutd SIGKILLed and started again under a pam_systemd login: it reopens the session's
    reference FIFO, so the logout still ends the session and kills its leftovers, even when the
    logout (and its failed ReleaseSession) happened while logoutd was down."""
    daemon = dbus_daemon
    login = env.login("ssh", systemd_pam, user, script("nohup", "daemon"), bus=bus)
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    fifo = daemon.runtime_dir / "login1" / f"{session['id']}.ref"
    assert fifo.is_fifo()

    daemon.kill()
    if logout_while_down:
        assert login.logout() == 0, login.report()
        assert all(p.alive() for p in procs.values())  # nobody is there to kill them yet
    daemon.start()

    if not logout_while_down:
        again = daemon.wait_session(user.name)
        assert (again["id"], again["leader"], again["state"]) == (
            session["id"], session["leader"], "active"), again
        assert fifo.is_fifo()
        assert str(fifo) in _open_files(daemon.popen.pid), "the new daemon did not reopen it"
        assert_in_scope(env, again, procs.values())
        assert login.logout() == 0, login.report()

    wait_gone(env, procs.values(), 10, "nohup job and setsid daemon")
    wait_session_removed(env, daemon, session)
    assert not fifo.exists()
    assert daemon.sessions() == []
