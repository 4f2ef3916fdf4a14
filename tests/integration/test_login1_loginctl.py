"""Stock loginctl 252 (and busctl) against `logoutd --dbus`, on sessions opened by real ssh logins
through pam_systemd: what it shows must match reality (/proc, the cgroup tree, logoutd's API), what
it does must happen, and an unprivileged user may end only their own sessions.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import pytest

from tests.integration.harness.checks import (
    assert_alive_for,
    assert_in_scope,
    open_held,
    wait_gone,
    wait_session_removed,
)
from tests.integration.harness.loginctl import (
    LOGINCTL,
    busctl,
    call,
    json_data,
    loginctl,
    properties,
    session_path,
    user_path,
)
from tests.integration.harness.procs import Proc, descendants, status_field, wait_for

ACCESS_DENIED = "org.freedesktop.DBus.Error.AccessDenied"
pytestmark = pytest.mark.skipif(not Path(LOGINCTL).exists(), reason=f"{LOGINCTL} not installed")


def open_ssh(env, pam, bus, daemon, user, *kinds: str, extra: str = ""):
    """A held ssh login through pam_systemd; returns login, procs, session."""
    return open_held(env, daemon, "ssh", pam, user, *kinds, extra=extra, bus=bus)


def _ok(result):
    assert result.returncode == 0, result
    return result


def _state(pid: int) -> str:
    return (status_field(pid, "State") or "gone")[:1]


def test_list_show_and_status_of_sessions(env, user, user2, systemd_pam, bus, dbus_daemon):
    daemon = dbus_daemon
    monitor = bus.monitor(env.cleanup)
    t0 = time.monotonic()
    _, procs, s1 = open_ssh(env, systemd_pam, bus, daemon, user, "nohup")
    t1 = time.monotonic()
    _, _, s2 = open_ssh(env, systemd_pam, bus, daemon, user2)

    listed = _ok(loginctl(bus, "list-sessions")).stdout.splitlines()
    assert listed[0].split() == ["SESSION", "UID", "USER", "SEAT", "TTY"], listed
    assert listed[-2:] == ["", "2 sessions listed."], listed
    rows = sorted(tuple(line.split()) for line in listed[1:-2])
    assert rows == sorted([(s1["id"], str(user.uid), user.name),
                           (s2["id"], str(user2.uid), user2.name)]), listed

    shown = properties(_ok(loginctl(
        bus, "show-session", s1["id"], "-p", "Id", "-p", "Name", "-p", "User", "-p", "State",
        "-p", "Leader", "-p", "Scope", "-p", "Service", "-p", "Type", "-p", "Class", "-p",
        "Remote", "-p", "RemoteHost", "-p", "Active", "-p", "TTY", "-p", "Seat",
        "-p", "TimestampMonotonic")).stdout)
    leader = s1["leader"]
    assert shown == {
        "Id": s1["id"], "Name": user.name, "User": str(user.uid), "State": "active",
        "Leader": str(leader), "Scope": f"session-{s1['id']}.scope",
        "Service": systemd_pam.name, "Type": "tty", "Class": "user", "Remote": "yes",
        "RemoteHost": "127.0.0.1", "Active": "yes", "TTY": "", "Seat": "",
        "TimestampMonotonic": shown.get("TimestampMonotonic", "?"),
    }, shown
    # CLOCK_MONOTONIC in µs, taken while the login was being opened.
    assert t0 * 1e6 <= int(shown["TimestampMonotonic"]) <= t1 * 1e6, (t0, shown, t1)
    # The leader loginctl names is the sshd process that ran pam_systemd, inside the scope.
    assert leader in descendants(env.sshd(systemd_pam, bus).proc.pid)
    assert Proc.of(leader).cgroup() == env.rel(s1["scope"])
    assert_in_scope(env, s1, procs.values())
    assert _ok(loginctl(bus, "show-session", s2["id"], "-P", "Name")).stdout == user2.name + "\n"

    status = _ok(loginctl(bus, "session-status", s1["id"]))
    lines = [line.strip() for line in status.stdout.splitlines()]
    assert lines[0] == f"{s1['id']} - {user.name} ({user.uid})", status.stdout
    assert lines[1].startswith("Since: "), status.stdout
    assert lines[2].startswith(f"Leader: {leader} ("), status.stdout
    assert lines[3:7] == ["Remote: 127.0.0.1",
                          f"Service: {systemd_pam.name}; type tty; class user",
                          "State: active", f"Unit: session-{s1['id']}.scope"], status.stdout

    # Unknown sessions: logind's error name.
    missing = loginctl(bus, "show-session", "nosuchsession")
    assert missing.returncode != 0, missing
    [get] = [c for c in monitor.calls("GetSession") if c.strings() == ["nosuchsession"]]
    assert monitor.wait_reply(get).fields.get("error_name") == (
        "org.freedesktop.login1.NoSuchSession")


def test_terminate_session(env, user, systemd_pam, bus, dbus_daemon):
    daemon = dbus_daemon
    login, procs, session = open_ssh(env, systemd_pam, bus, daemon, user, "nohup", "daemon",
                                     extra='echo "PID shell $$"')
    assert_in_scope(env, session, procs.values())
    _ok(loginctl(bus, "terminate-session", session["id"]))
    wait_gone(env, procs.values(), 10, "the session's processes")
    wait_session_removed(env, daemon, session)
    login.wait(timeout=20)  # the ssh connection went with the session
    assert daemon.sessions() == []


# A leftover that records each SIGUSR1 in a file, and says when its trap is set.
USR1_TRAPPER = (
    'rm -f "$HOME/usr1.log" "$HOME/armed"; '
    # TERM and HUP ignored: the leader dies of the SIGUSR1 too, and the session's SIGTERM round
    # could otherwise end the trapper before it ran its trap; the stop timeout's SIGKILL ends it.
    "sh -c 'trap \"\" TERM HUP; trap \"echo USR1 >> \\$HOME/usr1.log\" USR1; : > \"$HOME/armed\"; "
    "while :; do sleep 0.1; done' >/dev/null 2>&1 </dev/null & _p=$!; "
    'until [ -e "$HOME/armed" ]; do sleep 0.01; done; echo "PID trapper $_p"'
)


def test_kill_session_signal_and_whom(env, user, systemd_pam, bus, dbus_daemon):
    daemon = dbus_daemon
    login, procs, session = open_ssh(env, systemd_pam, bus, daemon, user, "nohup",
                                     extra=USR1_TRAPPER)
    sid, leader = session["id"], session["leader"]
    assert_in_scope(env, session, procs.values())

    # --kill-whom=leader: only the leader (sshd's PAM process) is stopped, then continued.
    _ok(loginctl(bus, "kill-session", sid, "--kill-whom=leader", "--signal=SIGSTOP"))
    wait_for(lambda: _state(leader) == "T", 5, "the leader to stop")
    assert [_state(p.pid) for p in procs.values()] == ["S", "S"], procs
    _ok(loginctl(bus, "kill-session", sid, "--kill-whom=leader", "--signal=SIGCONT"))
    wait_for(lambda: _state(leader) in ("S", "R"), 5, "the leader to continue")
    assert (user.home / "usr1.log").exists() is False

    # Default --kill-whom=all: SIGUSR1 reaches every process of the scope: the trapper records
    # it, the nohup'd sleep dies of it (default action).
    _ok(loginctl(bus, "kill-session", sid, "--signal=SIGUSR1"))
    log = user.home / "usr1.log"
    # Every line USR1: a child the trapper had just forked (before its exec of sleep) runs the
    # inherited trap too when it gets the signal, so there may be two.
    wait_for(lambda: log.exists() and set(log.read_text().splitlines()) == {"USR1"}, 5,
             "the trapper to record SIGUSR1",
             details=lambda: repr(log.read_text()) if log.exists() else f"no {log}")
    wait_gone(env, [procs["nohup"]], 5, "the nohup'd sleep (SIGUSR1)")
    # sshd's own processes die of SIGUSR1 as well: the login ends, the trapper is killed.
    wait_gone(env, [procs["trapper"]], 10, "the trapper")
    wait_session_removed(env, daemon, session)
    login.wait(timeout=20)


def test_users_status_and_linger(env, user, user2, systemd_pam, bus, dbus_daemon):
    daemon = dbus_daemon
    _, procs, s1 = open_ssh(env, systemd_pam, bus, daemon, user, "nohup")
    open_ssh(env, systemd_pam, bus, daemon, user2)
    linger_file = daemon.state_dir / "linger" / user.name

    def listed_users() -> dict[str, tuple[str, str]]:
        out = _ok(loginctl(bus, "list-users")).stdout.splitlines()
        assert out[0].split() == ["UID", "USER", "LINGER"], out
        assert out[-2:] == ["", "2 users listed."], out
        return {f[1]: (f[0], f[2]) for f in (line.split() for line in out[1:-2])}

    assert listed_users() == {user.name: (str(user.uid), "no"), user2.name: (str(user2.uid), "no")}

    status = _ok(loginctl(bus, "user-status", user.name))
    lines = [line.strip() for line in status.stdout.splitlines()]
    assert lines[0] == f"{user.name} ({user.uid})", status.stdout
    assert lines[2:6] == ["State: active", f"Sessions: *{s1['id']}", "Linger: no",
                          f"Unit: user-{user.uid}.slice"], status.stdout
    shown = properties(_ok(loginctl(bus, "show-user", user.name, "-p", "UID", "-p", "Name",
                                    "-p", "State", "-p", "Linger", "-p", "RuntimePath",
                                    "-p", "Slice", "-p", "Sessions")).stdout)
    runtime = daemon.user_runtime_root / str(user.uid)
    assert shown == {"UID": str(user.uid), "Name": user.name, "State": "active",
                     "Linger": "no", "RuntimePath": str(runtime), "Slice": f"user-{user.uid}.slice",
                     "Sessions": s1["id"]}, shown
    assert runtime.is_dir() and runtime.stat().st_uid == user.uid

    _ok(loginctl(bus, "enable-linger", user.name))
    assert linger_file.exists()
    assert {u["name"]: u["linger"] for u in daemon.users()} == {user.name: True,
                                                                user2.name: False}
    assert listed_users()[user.name] == (str(user.uid), "yes")
    assert _ok(loginctl(bus, "show-user", user.name, "-P", "Linger")).stdout == "yes\n"

    _ok(loginctl(bus, "disable-linger", user.name))
    assert not linger_file.exists()
    assert listed_users()[user.name] == (str(user.uid), "no")
    assert {u["name"]: u["linger"] for u in daemon.users()}[user.name] is False

    # A user may set their own linger (LingerSelfAllow= unset, no polkit on the bus) ...
    _ok(loginctl(bus, "enable-linger", as_user=user))
    assert linger_file.exists()
    # ... but not another user's.
    denied = loginctl(bus, "disable-linger", user.name, as_user=user2)
    assert denied.returncode != 0 and "Access denied" in denied.stderr, denied
    assert linger_file.exists()
    _ok(loginctl(bus, "disable-linger", as_user=user))
    assert not linger_file.exists()
    assert_in_scope(env, s1, procs.values())


def test_unprivileged_user_may_end_only_own_sessions(env, user, user2, systemd_pam, bus,
                                                     dbus_daemon):
    daemon = dbus_daemon
    monitor = bus.monitor(env.cleanup)
    login, procs, victim = open_ssh(env, systemd_pam, bus, daemon, user, "nohup",
                                    extra='echo "PID shell $$"')
    sid, uid = victim["id"], str(user.uid)

    for argv in (["terminate-session", sid], ["kill-session", sid],
                 ["kill-session", sid, "--kill-whom=leader", "--signal=SIGSTOP"],
                 ["terminate-user", user.name], ["kill-user", user.name]):
        refused = loginctl(bus, *argv, as_user=user2)
        assert refused.returncode == 1 and "Access denied" in refused.stderr, (argv, refused)
    spath, upath = session_path(sid), user_path(user.uid)
    attempts = [
        ("TerminateSession", "s", sid), ("KillSession", "ssi", sid, "all", "15"),
        ("TerminateUser", "u", uid), ("KillUser", "ui", uid, "9"),
        ("SetUserLinger", "ubb", uid, "true", "false"),
    ]
    for member, sig, *args in attempts:
        refused = call(bus, member, sig, *args, as_user=user2)
        assert refused.returncode != 0 and "Access denied" in refused.stderr, (member, refused)
    for path, interface, member, sig, args in [
            (spath, "org.freedesktop.login1.Session", "Terminate", "", []),
            (spath, "org.freedesktop.login1.Session", "Kill", "si", ["all", "9"]),
            (upath, "org.freedesktop.login1.User", "Terminate", "", []),
            (upath, "org.freedesktop.login1.User", "Kill", "i", ["9"])]:
        refused = call(bus, member, sig, *args, path=path, interface=interface, as_user=user2)
        assert refused.returncode != 0 and "Access denied" in refused.stderr, (member, refused)

    # Each refusal came from logoutd (the bus policy lets these calls through) with logind's name.
    members = ["TerminateSession", "KillSession", "TerminateUser", "KillUser", "SetUserLinger",
               "Terminate", "Kill"]
    refusals = [c for m in members for c in monitor.calls(m, destination="org.freedesktop.login1")]
    assert len(refusals) == 5 + 5 + 4, [str(c) for c in refusals]
    for c in refusals:
        reply = monitor.wait_reply(c)
        assert (reply.kind, reply.fields.get("error_name")) == ("error", ACCESS_DENIED), (
            str(c), str(reply))

    # Nothing happened to the session.
    assert_alive_for(env, procs.values(), 0.5)
    assert_in_scope(env, daemon.session(sid), procs.values())
    assert _state(victim["leader"]) != "T"
    assert not (daemon.state_dir / "linger" / user.name).exists()
    # Reading is allowed.
    assert json_data(call(bus, "GetSession", "s", sid, as_user=user2)) == [spath]

    # The owner may end it.
    _ok(loginctl(bus, "terminate-session", sid, as_user=user))
    wait_gone(env, procs.values(), 10, "the session's processes")
    wait_session_removed(env, daemon, victim)
    login.wait(timeout=20)


def test_self_and_auto_resolve_to_the_callers_session(env, user, systemd_pam, bus, dbus_daemon):
    """Inside a session, the user's own busctl: session/self, session/auto, user/self and
    GetSessionByPID(0) name that session and user (resolved from the caller's pid)."""
    daemon = dbus_daemon
    base = f"busctl --address={shlex.quote(bus.address)}"
    queries = {
        "self": f"{base} get-property org.freedesktop.login1 "
                "/org/freedesktop/login1/session/self org.freedesktop.login1.Session Id",
        "auto": f"{base} get-property org.freedesktop.login1 "
                "/org/freedesktop/login1/session/auto org.freedesktop.login1.Session Name",
        "user": f"{base} get-property org.freedesktop.login1 "
                "/org/freedesktop/login1/user/self org.freedesktop.login1.User UID",
        "bypid": f"{base} call org.freedesktop.login1 /org/freedesktop/login1 "
                 "org.freedesktop.login1.Manager GetSessionByPID u 0",
    }
    extra = "; ".join(f'echo "Q {tag} $({cmd} 2>&1)"' for tag, cmd in queries.items())
    login, _, session = open_ssh(env, systemd_pam, bus, daemon, user, extra=extra)
    answers = dict(line[2:].split(" ", 1) for line in login.lines if line.startswith("Q "))
    assert answers == {
        "self": f's "{session["id"]}"', "auto": f's "{user.name}"', "user": f"u {user.uid}",
        "bypid": f'o "{session_path(session["id"])}"',
    }, login.report()
    # Outside any session the same call names nothing.
    outside = busctl(bus, "get-property", "org.freedesktop.login1",
                     "/org/freedesktop/login1/session/self", "org.freedesktop.login1.Session",
                     "Id", as_user=user)
    assert outside.returncode != 0, outside
    assert login.logout() == 0
