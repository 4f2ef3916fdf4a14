"""Configuration on a live daemon: file:line warnings, SIGHUP reload, a bad reload keeps the old."""

from __future__ import annotations

from tests.integration.harness.checks import assert_alive_for, wait_gone, wait_session_removed
from tests.integration.harness.login import script
from tests.integration.harness.procs import signal_proc


def _leave_nohup(env, pam, user, daemon):
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name, state="active")
    assert login.logout() == 0, login.report()
    return procs["nohup"], session


def test_invalid_value_warns_with_file_and_line(env, start_daemon):
    daemon = start_daemon("[Login]\nKillUserProcesses=maybe\nSessionsMax=12\n")
    dropin = daemon.base / "root/etc/systemd/logind.conf.d/50-test.conf"
    daemon.wait_for(lambda: f"{dropin}:2:" in daemon.log(), 5, "the warning")
    line = next(x for x in daemon.log().splitlines() if f"{dropin}:2:" in x)
    assert "maybe" in line, line
    assert daemon.call("status")["config_files"][-1] == str(dropin)


def test_sighup_reload_applies_to_later_logouts(env, user, pam, start_daemon):
    daemon = start_daemon("[Login]\nKillUserProcesses=no\n")
    nohup, session = _leave_nohup(env, pam, user, daemon)
    assert_alive_for(env, [nohup], 1.0)  # not killed: the session waits for it
    assert daemon.session(session["id"])["state"] == "closing"

    daemon.write_dropin("50-test.conf", "[Login]\nKillUserProcesses=yes\n")
    daemon.reload()
    daemon.wait_for(lambda: "Config file reloaded." in daemon.log(), 5, "the reload")
    # Already abandoned scopes are not revisited (as logind); the next logout is killed.
    assert daemon.session(session["id"])["state"] == "closing"
    nohup2, session2 = _leave_nohup(env, pam, user, daemon)
    wait_gone(env, [nohup2], 5, "nohup job of the session after the reload")
    wait_session_removed(env, daemon, session2)
    signal_proc(nohup, 9)
    wait_session_removed(env, daemon, session)


def test_bad_reload_keeps_previous_configuration(env, user, pam, start_daemon):
    daemon = start_daemon("[Login]\nKillUserProcesses=no\n")
    daemon.write_dropin("50-test.conf", "[Login]\nKillUserProcesses=yes\n[Login\n")
    result = daemon.call("reload")
    assert result["reloaded"] is False, result
    assert "50-test.conf:3" in result["error"], result
    assert "keeping the previous configuration" in daemon.log()
    nohup, session = _leave_nohup(env, pam, user, daemon)
    assert_alive_for(env, [nohup], 1.0)  # still KillUserProcesses=no
    assert "KillUserProcesses=no" in daemon.session(session["id"])["kill_reason"]
    signal_proc(nohup, 9)
    wait_session_removed(env, daemon, session)
