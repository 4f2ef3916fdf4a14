"""logoutctl's user verbs against a real daemon: list-users, user-status, show-user,
terminate-user, kill-user, enable-linger and disable-linger; names and uids alike; what an
unprivileged user may do."""

from __future__ import annotations

import re
import signal

from tests.integration.harness.checks import assert_alive_for, wait_gone, wait_session_removed
from tests.integration.harness.ctl import ctl, ctl_as, open_login
from tests.integration.harness.procs import wait_for


def test_list_users_layout(env, user, user2, pam, daemon):
    assert ctl(env, "list-users").out == "No users.\n"
    open_login(env, pam, user, daemon)
    open_login(env, pam, user2, daemon)
    result = ctl(env, "list-users")
    assert result.rc == 0, result
    first, second = sorted([user, user2], key=lambda u: u.uid)
    width = max(len(first.name), len(second.name))
    assert result.lines == [
        f"{'UID':>{len(str(second.uid))}} {'USER':<{width}} LINGER STATE",
        f"{first.uid} {first.name:<{width}} no     active",
        f"{second.uid} {second.name:<{width}} no     active",
        "",
        "2 users listed.",
    ], result.out
    assert ctl(env, "list-users", "--no-legend").lines == result.lines[1:3]
    document = ctl(env, "list-users", "--json").json()
    assert [u["name"] for u in document["users"]] == [first.name, second.name]


def test_user_status_and_show_user(env, user, pam, daemon):
    _, procs, s1 = open_login(env, pam, user, daemon, "nohup")
    _, _, s2 = open_login(env, pam, user, daemon)
    by_name = ctl(env, "user-status", user.name)
    assert by_name.rc == 0, by_name
    assert ctl(env, "user-status", str(user.uid)).lines[3:] == by_name.lines[3:]
    lines = by_name.lines
    assert lines[0] == f"{user.name} ({user.uid})"
    assert re.fullmatch(r"\t   Since: .+; (.+ ago|now)", lines[1]), lines[1]
    assert lines[2] == "\t   State: active"
    assert lines[3] == "\tSessions: " + " ".join(sorted([s1["id"], s2["id"]]))
    assert lines[4] == "\t  Linger: no"
    assert lines[5] == f"\t    Unit: user-{user.uid}.slice"
    scopes = sorted([f"session-{s1['id']}.scope", f"session-{s2['id']}.scope"])
    assert lines[6] == f"\t\t  ├─{scopes[0]}", lines
    assert f"\t\t  └─{scopes[1]}" in lines
    assert any(line.endswith(f"{procs['nohup'].pid} sleep 1000") for line in lines), lines

    props = dict(line.split("=", 1) for line in ctl(env, "show-user", user.name).lines)
    assert props == {
        "UID": str(user.uid), "GID": str(user.gid), "Name": user.name,
        "Timestamp": props["Timestamp"],
        "RuntimePath": str(daemon.user_runtime_root / str(user.uid)),
        "Service": f"user@{user.uid}.service", "Slice": f"user-{user.uid}.slice",
        "State": "active", "Sessions": " ".join(sorted([s1["id"], s2["id"]])), "Linger": "no",
    }
    assert ctl(env, "show-user", str(user.uid), "-P", "Linger").lines == ["no"]
    document = ctl(env, "user-status", user.name, "--json").json()
    assert procs["nohup"].pid in {p["pid"] for p in document["users"][0]["processes"]}


def test_user_errors(env, user, pam, daemon):
    cases = [
        (["user-status", "no-such-user-x"], 6, "No user 'no-such-user-x' known."),
        # A uid goes to the daemon as it is, known to NSS or not (issue 13 item 6).
        (["show-user", "4294967294"], 6, "User ID 4294967294 is not logged in or lingering."),
        (["show-user", "4294967295"], 6, "No user '4294967295' known."),
        (["user-status", user.name], 6, f"User ID {user.uid} is not logged in or lingering."),
        (["terminate-user", user.name], 6, f"User ID {user.uid} is not logged in or lingering."),
        (["kill-user", user.name, "-s", "NOPE"], 2, "Invalid signal 'NOPE'."),
        (["kill-user"], 2, "Too few arguments for 'kill-user'"),
        (["enable-linger", "no-such-user-x"], 6, "No user 'no-such-user-x' known."),
    ]
    for argv, status, message in cases:
        result = ctl(env, *argv)
        assert (result.rc, result.err) == (status, message + "\n") or (
            result.rc == status and message in result.err), (argv, result)


def test_kill_user_and_terminate_user(env, user, pam, start_daemon):
    daemon = start_daemon("[Login]\nKillUserProcesses=no\n")
    login1, procs1, s1 = open_login(env, pam, user, daemon, "nohup")
    login2, procs2, s2 = open_login(env, pam, user, daemon, "nohup")

    cont = ctl(env, "kill-user", str(user.uid), "--signal", "18", "--json")
    assert cont.rc == 0, cont
    [kill] = cont.json()["kills"]
    assert kill["uid"] == user.uid and kill["user"] == user.name
    assert kill["signal"] == signal.SIGCONT and kill["signalled"] >= 4, kill
    assert_alive_for(env, [*procs1.values(), *procs2.values()], 0.3)

    result = ctl(env, "terminate-user", user.name)
    assert (result.rc, result.out, result.err) == (0, "", ""), result
    wait_gone(env, [*procs1.values(), *procs2.values()], 10, "every process of the user")
    wait_session_removed(env, daemon, s1)
    wait_session_removed(env, daemon, s2)
    login1.wait()
    login2.wait()
    daemon.wait_for(lambda: all(u["uid"] != user.uid for u in daemon.users()), 10, "user gone")


def test_enable_and_disable_linger(env, user, daemon):
    flag = daemon.state_dir / "linger" / user.name
    enabled = ctl(env, "enable-linger", user.name, "--json")
    assert enabled.rc == 0, enabled
    assert enabled.json() == {"schema": 1, "linger": [
        {"uid": user.uid, "name": user.name, "linger": True}]}
    assert flag.is_file()
    assert ctl(env, "--no-legend", "list-users").lines == [f"{user.uid} {user.name} yes    lingering"]
    runtime = daemon.user_runtime_root / str(user.uid)
    assert runtime.is_dir()
    status = ctl(env, "user-status", user.name)
    assert "\t   State: lingering" in status.lines and "\t  Linger: yes" in status.lines, status.out
    assert ctl(env, "enable-linger", str(user.uid)).rc == 0  # idempotent

    disabled = ctl(env, "disable-linger", str(user.uid))
    assert (disabled.rc, disabled.out, disabled.err) == (0, "", ""), disabled
    assert not flag.exists()
    # Nothing keeps the user any more (UserStopDelaySec=0 in the harness): it is stopped.
    daemon.wait_for(lambda: all(u["uid"] != user.uid for u in daemon.users()), 10, "user gone")
    wait_for(lambda: not runtime.exists(), 5, "the runtime dir to be removed")
    assert ctl(env, "disable-linger", user.name).rc == 0  # idempotent


def test_unprivileged_user_on_users_and_linger(env, user, user2, pam, daemon):
    _, other_procs, other = open_login(env, pam, user2, daemon, "nohup")
    assert ctl_as(env, user, "--no-legend", "list-users").lines[0].startswith(f"{user2.uid} ")
    assert ctl_as(env, user, "show-user", user2.name, "-P", "State").lines == ["active"]
    for argv, what in ((["terminate-user", user2.name], "terminate the user"),
                       (["kill-user", str(user2.uid)], "kill the processes"),
                       (["enable-linger", user2.name], "enable linger"),
                       (["disable-linger", user2.name], "disable linger")):
        denied = ctl_as(env, user, *argv)
        assert denied.rc == 4, (argv, denied)
        assert denied.err == (f"Access denied: uid {user.uid} may not {what} of uid "
                              f"{user2.uid}.\n"), denied
    assert_alive_for(env, other_procs.values(), 0.3)
    assert not (daemon.state_dir / "linger" / user2.name).exists()
    assert daemon.session(other["id"])["state"] == "active"

    # Linger for oneself: by name, or with no USER at all (the caller).
    assert ctl_as(env, user, "enable-linger").rc == 0
    assert (daemon.state_dir / "linger" / user.name).is_file()
    assert ctl_as(env, user, "show-user", user.name, "-P", "Linger").lines == ["yes"]
    assert ctl_as(env, user, "disable-linger", user.name).rc == 0
    assert not (daemon.state_dir / "linger" / user.name).exists()
