"""KeepUserWhileUnits=: over a real ssh login, a tmux kept by the shell integration outlives the
user's last session by far more than UserStopDelaySec= when the option is on (the user shows as
lingering, and stops once tmux ends), and dies with the user when it is off (logind's way)."""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.integration.harness.checks import assert_alive_for, wait_gone
from tests.integration.harness.login import script
from tests.integration.test_shell_integration import _integration

START = ("tmux new-session -d -s keep 'sleep 1000' 2>&1; "
         'echo "PID tmux $(command tmux display-message -p -t keep "#{pid}")"')


def _config(on: bool) -> str:
    return ("[Login]\nUserStopDelaySec=1s\n"
            f"[Policy]\nKeepUserWhileUnits={'yes' if on else 'no'}\n")


def _kept_tmux_after_logout(env, user, pam, daemon):
    login = env.sshd(pam).login(user, script(extra=f"{_integration(env)}; {START}"))
    procs = login.wait_ready()
    env.track(procs.values())
    assert set(procs) == {"tmux"}, login.report()
    assert "/app.slice/run-u" in (procs["tmux"].cgroup() or ""), procs["tmux"].describe()
    daemon.wait_session(user.name, state="active")
    assert login.logout() == 0, login.report()
    daemon.wait_for(lambda: not daemon.sessions(user.name), 10, "the session to end")
    return procs["tmux"]


def _user(daemon, name):
    return next((u for u in daemon.users() if u["name"] == name), None)


@pytest.mark.parametrize("on", [True, False], ids=["on", "off"])
def test_a_kept_tmux_outlives_the_stop_delay_only_with_the_option(env, user, pam, start_daemon,
                                                                   on):
    daemon = start_daemon(_config(on))
    tmux = _kept_tmux_after_logout(env, user, pam, daemon)
    if not on:
        wait_gone(env, [tmux], 15, "the kept tmux once the user stopped")
        daemon.wait_for(lambda: _user(daemon, user.name) is None, 15, "the user to be stopped")
        return
    assert_alive_for(env, [tmux], 31.0)  # 30 s past UserStopDelaySec=1s
    assert _user(daemon, user.name)["state"] == "lingering", daemon.users()
    assert "kept while 1 unit(s) run (KeepUserWhileUnits=yes)" in daemon.log()
    # tmux ends: the user stops UserStopDelaySec= later, as after a last logout
    os.kill(tmux.pid, signal.SIGTERM)
    wait_gone(env, [tmux], 10, "tmux after SIGTERM")
    daemon.wait_for(lambda: _user(daemon, user.name) is None, 15, "the user to be stopped")


def test_a_restart_keeps_the_hold_and_its_deadline(env, user, pam, start_daemon):
    daemon = start_daemon(_config(True) + "KeepUserMaxSec=40s\n")
    tmux = _kept_tmux_after_logout(env, user, pam, daemon)
    logged_out = time.monotonic()
    assert_alive_for(env, [tmux], 20)
    daemon.restart()
    # held after the restart too, until 40 s after the logout: a count started again at the
    # restart would end 60 s after it
    assert_alive_for(env, [tmux], 30 - (time.monotonic() - logged_out))
    assert _user(daemon, user.name)["state"] == "lingering", daemon.users()
    wait_gone(env, [tmux], 55 - (time.monotonic() - logged_out), "tmux at KeepUserMaxSec=")
    assert "KeepUserMaxSec=40s" in daemon.log(), daemon.log()


def test_reload_turning_it_off_stops_a_held_user_after_the_stop_delay(env, user, pam,
                                                                    start_daemon):
    daemon = start_daemon(_config(True))
    tmux = _kept_tmux_after_logout(env, user, pam, daemon)
    assert_alive_for(env, [tmux], 5)
    daemon.write_dropin("60-off.conf", "[Policy]\nKeepUserWhileUnits=no\n")
    daemon.reload()
    wait_gone(env, [tmux], 15, "the kept tmux once the reload released the user")
    daemon.wait_for(lambda: _user(daemon, user.name) is None, 15, "the user to be stopped")
