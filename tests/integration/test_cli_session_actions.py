"""logoutctl's session actions against a real daemon: terminate-session, kill-session (leader
or all, signals by name or number), errors and their exit status, what an unprivileged user may
do to sessions."""

from __future__ import annotations

import os
import signal

import logoutd
from tests.integration.harness.checks import (
    assert_alive_for,
    assert_in_scope,
    wait_gone,
    wait_session_removed,
)
from tests.integration.harness.ctl import ctl, ctl_as, open_login
from tests.integration.harness.procs import Proc

# -- terminate-session, kill-session ----------------------------------------------------------


def test_terminate_session_kills_everything(env, user, pam, daemon):
    login, procs, session = open_login(env, pam, user, daemon, "nohup", "daemon", "stubborn")
    result = ctl(env, "terminate-session", session["id"], "--json")
    assert result.rc == 0 and result.err == "", result
    assert result.json()["sessions"][0]["id"] == session["id"]
    assert result.json()["sessions"][0]["stop_cause"] == "terminate"
    wait_gone(env, procs.values(), 10, "processes of the terminated session")
    wait_session_removed(env, daemon, session)
    login.wait()
    again = ctl(env, "terminate-session", session["id"])
    assert (again.rc, again.err) == (5, f"No session '{session['id']}' known.\n")


def test_kill_session_leader_then_all(env, user, pam, start_daemon):
    daemon = start_daemon("[Login]\nKillUserProcesses=no\n")
    login, procs, session = open_login(env, pam, user, daemon, "nohup")
    leader = Proc.of(session["leader"], "leader")

    # --kill-whom=leader signals the leader alone (loginctl 252 cannot): the nohup job stays.
    result = ctl(env, "kill-session", session["id"], "--kill-whom=leader", "--signal", "KILL",
                 "--json")
    assert result.rc == 0, result
    assert result.json()["kills"] == [{"session": session["id"], "who": "leader",
                                       "signal": signal.SIGKILL, "signalled": 1}]
    wait_gone(env, [leader], 5, "the leader")
    assert_alive_for(env, procs.values(), 1.0)
    closing = daemon.wait_for(lambda: daemon.session(session["id"])["state"] == "closing", 5)
    assert closing
    login.wait()
    gone = ctl(env, "kill-session", session["id"], "--kill-whom", "leader")
    assert gone.rc == 9 and "leader" in gone.err, gone

    # Default: every process, SIGTERM; names, short names and numbers are the same signal.
    for word in ("SIGCONT", "CONT", "cont", str(int(signal.SIGCONT))):
        again = ctl(env, "kill-session", session["id"], "-s", word, "--json")
        assert again.json()["kills"][0]["signal"] == signal.SIGCONT, (word, again)
    assert_alive_for(env, procs.values(), 0.3)
    result = ctl(env, "kill-session", session["id"])
    assert (result.rc, result.out, result.err) == (0, "", "")
    wait_gone(env, procs.values(), 5, "the nohup job after SIGTERM")
    wait_session_removed(env, daemon, session)


def test_session_errors(env, user, pam, daemon):
    _, _, session = open_login(env, pam, user, daemon)
    cases = [
        (["session-status", "42"], 5, "No session '42' known."),
        (["show-session", session["id"], "nope"], 5, "No session 'nope' known."),
        (["kill-session", session["id"], "--signal", "FOO"], 2, "Invalid signal 'FOO'."),
        (["kill-session", session["id"], "--signal", "0"], 2, "Invalid signal '0'."),
        (["kill-session", session["id"], "--kill-whom", "some"], 2, "--kill-whom"),
        (["terminate-session"], 2, "Too few arguments for 'terminate-session'"),
        (["list-sessions", "x"], 2, "Too many arguments for 'list-sessions'."),
        (["frobnicate"], 2, "Unknown command verb 'frobnicate'"),
        (["--frobnicate"], 2, "Unrecognized arguments: --frobnicate."),
        (["show-session", session["id"], "-p", "a=b"], 2, "Invalid property name 'a=b'."),
        (["run", "sleep", "1"], 6, "User root (uid 0) has no session and does not linger"),
        (["leftovers", "--user", "nosuchuserxyz"], 6, "No user 'nosuchuserxyz' known."),
    ]
    for argv, status, message in cases:
        result = ctl(env, *argv)
        assert result.rc == status and message in result.err, (argv, result)
        assert result.out == "" and len(result.err.splitlines()) == 1, (argv, result)
    assert daemon.session(session["id"])["state"] == "active"  # nothing happened to it


def test_daemon_not_running(env):
    result = ctl(env, "list-sessions")
    assert result.rc == 10, result
    assert result.err == (f"logoutd is not running (no socket at {env.socket}: "
                          "No such file or directory).\n")
    assert ctl(env, "status", "--socket", "/nonexistent/api.sock").rc == 10
    assert ctl(env, "--help").rc == 0 and "session-status [ID…]" in ctl(env, "--help").out
    assert ctl(env, "--version").out == f"logoutctl {logoutd.__version__}\n"
    assert "15 SIGTERM" in ctl(env, "--signal", "help").out


def test_unprivileged_user_on_sessions(env, user, user2, pam, daemon):
    """A user may look at everything and end its own sessions, never another user's."""
    _, procs, own = open_login(env, pam, user, daemon, "nohup")
    _, other_procs, other = open_login(env, pam, user2, daemon, "nohup")
    listed = ctl_as(env, user, "--no-legend", "list-sessions")
    assert listed.rc == 0 and len(listed.lines) == 2, listed
    status = ctl_as(env, user, "session-status", other["id"])
    assert status.rc == 0 and status.lines[0].startswith(f"{other['id']} - {user2.name}"), status
    assert ctl_as(env, user, "show-session", other["id"], "-P", "Name").lines == [user2.name]

    for verb in (["terminate-session", other["id"]], ["kill-session", other["id"]],
                 ["kill-session", other["id"], "--kill-whom=leader", "-s", "KILL"]):
        denied = ctl_as(env, user, *verb)
        assert denied.rc == 4, (verb, denied)
        assert denied.err == (f"Access denied: uid {user.uid} may not "
                              f"{verb[0].split('-')[0]} session {other['id']} of uid "
                              f"{user2.uid}.\n"), denied
    assert_alive_for(env, other_procs.values(), 0.5)
    assert daemon.session(other["id"])["state"] == "active"

    ended = ctl_as(env, user, "terminate-session", own["id"])
    assert (ended.rc, ended.out, ended.err) == (0, "", ""), ended
    wait_gone(env, procs.values(), 10, "the user's own terminated session")
    wait_session_removed(env, daemon, own)
    assert_in_scope(env, daemon.session(other["id"]), other_procs.values())
    assert os.geteuid() == 0
