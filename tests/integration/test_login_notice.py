"""The notice at the next login (issue 14 item 1), through the installed shell integration in
real interactive ssh logins (a pty) of bash and zsh: after a killed job and after a
permissive leftover; never for `ssh host cmd`; shown once; switched off by the user; kept
across a daemon restart; `kill-history --json` on demand. The daemon's info line names the
processes a logout killed (issue 13 item 3)."""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.harness.checks import wait_gone
from tests.integration.harness.procs import Proc
from tests.integration.test_shell_login import Terminal, _logoutctl, _open, _setup

SHELLS = ["bash", "zsh"]
KILL = "[Login]\nKillUserProcesses=yes\nUserStopDelaySec=60s\n"
# A job that outlives the shell (disowned: no SIGHUP from it) until logoutd ends it.
JOB = 'sleep 4321 </dev/null >/dev/null 2>&1 & echo "JOB $!"; disown'


def _leave_a_job(env, sshd, user, daemon, term: Terminal) -> Proc:
    out = term.run(JOB)
    pid = int(re.search(r"JOB (\d+)", out).group(1))  # type: ignore[union-attr]
    job = Proc.of(pid, "sleep 4321")
    env.track([job])
    assert term.logout() == 0, term.seen
    daemon.wait_for(lambda: all(s["state"] == "closing" for s in daemon.sessions(user.name)),
                    20, "the session to end (permissive: to close)")
    return job


def _notice(term: Terminal) -> str:
    """What the login printed before the shell's first prompt."""
    return term.seen[:term.seen.find("$ ")]


@pytest.mark.parametrize("shell", SHELLS)
def test_notice_after_a_killed_job_once_and_never_for_a_command(env, user, pam, start_daemon,
                                                                shell):
    daemon = start_daemon(KILL)
    ctl = _logoutctl(env, daemon)
    _setup(env, user, daemon, shell, ctl)
    sshd = env.sshd(pam)
    job = _leave_a_job(env, sshd, user, daemon, _open(env, sshd, user, daemon))
    wait_gone(env, [job], 20, "the job logoutd kills at logout")
    line = re.search(rf"Session \S+: sent SIGTERM, SIGCONT, SIGHUP to 1 processes: "
                     rf"sleep\[{job.pid}\] \d+s\.", daemon.log())
    assert line, daemon.log()[-3000:]

    quiet = sshd.run(user, "echo HELLO")  # not interactive: no notice, and it stays unshown
    assert quiet.returncode == 0 and quiet.stdout == "HELLO\n" and "logoutd" not in quiet.stderr

    term = _open(env, sshd, user, daemon)
    text = _notice(term)
    assert re.search(r"logoutd: your session \S+ \([^)]+\) ended .*; this process was ended "
                     r"with it:", text), text
    assert re.search(rf"  sleep +pid {job.pid} +ran \d+s +sleep 4321", text), text
    assert "To keep such a program next time, start it with" in text
    assert "  logoutctl run --scope -- sleep 4321" in text
    assert "logoutctl why-killed" in text and "logoutctl login-notice off" in text
    assert term.logout() == 0, term.seen

    again = _open(env, sshd, user, daemon)  # shown once
    assert "logoutd:" not in _notice(again), again.seen
    out = again.run(f"{ctl} --json kill-history")
    data = json.loads(out[out.index("{"):out.rindex("}") + 1])["kill_history"]
    [entry] = data["entries"]
    assert entry["mode"] == "killed" and entry["shown"] is True and entry["count"] == 1
    assert entry["processes"][0]["pid"] == job.pid
    again.logout()


@pytest.mark.parametrize("shell", SHELLS)
def test_notice_after_a_permissive_leftover(env, user, pam, start_daemon, shell):
    daemon = start_daemon("[Login]\nKillUserProcesses=permissive\nUserStopDelaySec=60s\n")
    _setup(env, user, daemon, shell, _logoutctl(env, daemon))
    sshd = env.sshd(pam)
    job = _leave_a_job(env, sshd, user, daemon, _open(env, sshd, user, daemon))
    assert job.alive()
    term = _open(env, sshd, user, daemon)
    text = _notice(term)
    assert "; this process kept running, and will be ended at logout once the administrator " \
        "turns killing on (KillUserProcesses=permissive):" in text, text
    assert re.search(rf"  sleep +pid {job.pid} +ran \d+s +sleep 4321", text), text
    term.logout()


def test_denied_policy_switched_off_and_kept_across_a_restart(env, user, pam, start_daemon):
    daemon = start_daemon(KILL + "[Policy]\nKeepAllowUsers=nobody\n")
    ctl = _logoutctl(env, daemon)
    _setup(env, user, daemon, "bash", ctl)
    sshd = env.sshd(pam)
    _leave_a_job(env, sshd, user, daemon, _open(env, sshd, user, daemon))
    daemon.restart()
    term = _open(env, sshd, user, daemon)
    text = _notice(term)
    assert "this process was ended with it:" in text, text  # the record survived the restart
    assert f"You may not keep programs past logout (user {user.name} is not in " \
        "KeepAllowUsers=nobody" in text and "logoutctl run --scope" not in text
    assert "Login notice off" in term.run(f"{ctl} login-notice off")
    term.run(JOB)
    assert term.logout() == 0, term.seen
    daemon.wait_for(lambda: not daemon.sessions(user.name), 20, "the session to end")
    off = _open(env, sshd, user, daemon)
    assert "logoutd:" not in _notice(off), off.seen
    out = off.run(f"{ctl} kill-history")  # on demand all the same
    assert out.count("sleep 4321") == 2, out
    off.logout()


def test_notice_in_login1_sessions(env, user, systemd_pam, bus, dbus_daemon):
    """Sessions made by stock pam_systemd through `logoutd --dbus` get the same records."""
    daemon = dbus_daemon
    _setup(env, user, daemon, "bash", _logoutctl(env, daemon))
    sshd = env.sshd(systemd_pam, bus)
    job = _leave_a_job(env, sshd, user, daemon, _open(env, sshd, user, daemon))
    wait_gone(env, [job], 20, "the job logoutd kills at logout")
    term = _open(env, sshd, user, daemon)
    text = _notice(term)
    assert "this process was ended with it:" in text, text
    assert re.search(rf"  sleep +pid {job.pid} +ran \d+s +sleep 4321", text), text
    term.logout()
