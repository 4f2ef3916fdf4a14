"""AutoKeep=/usr/bin/tmux: a tmux server started plainly in a session survives its logout and
is reachable at the next login; where policy denies keeping, it is killed like the rest."""

from __future__ import annotations

from tests.integration.harness.checks import assert_alive_for, wait_gone, wait_session_removed
from tests.integration.harness.login import script
from tests.integration.harness.procs import Proc

TMUX = (
    "tmux new-session -d -s keep 'sleep 1000'; "
    'echo "PID tmux $(tmux display-message -p -t keep "#{pid}")"; '
    'echo "PID pane $(tmux display-message -p -t keep "#{pane_pid}")"'
)


def _open_tmux(env, pam, user, daemon):
    login = env.login("su", pam, user, script(extra=TMUX))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name, state="active")
    assert set(procs) == {"tmux", "pane"}, login.report()
    assert login.logout() == 0, login.report()
    return procs, session


def test_autokeep_saves_a_plain_tmux(env, user, pam, start_daemon):
    daemon = start_daemon("[Login]\nUserStopDelaySec=60s\n[Policy]\nAutoKeep=/usr/bin/tmux\n")
    procs, session = _open_tmux(env, pam, user, daemon)
    wait_session_removed(env, daemon, session)
    assert_alive_for(env, procs.values(), 0.5)
    for proc in procs.values():
        assert proc.cgroup().endswith(
            f"/user@{user.uid}.service/app.slice/autokeep-{procs['tmux'].pid}.scope"), proc.describe()
    assert "kept process" in daemon.log() and "AutoKeep=" in daemon.log()
    units = daemon.call("list_units")["units"]
    assert [u["name"] for u in units] == [f"autokeep-{procs['tmux'].pid}.scope"], units

    # The next login reaches the same server and its session.
    again = env.su(pam).run(user.name, "tmux has-session -t keep && echo REACHED")
    assert "REACHED" in again.stdout, again
    assert Proc.of(procs["tmux"].pid).alive()


def test_autokeep_denied_by_policy_kills_tmux(env, user, pam, start_daemon):
    daemon = start_daemon("[Login]\nUserStopDelaySec=60s\n"
                          "[Policy]\nAutoKeep=/usr/bin/tmux\nKeepAllowUsers=nobody\n")
    procs, session = _open_tmux(env, pam, user, daemon)
    wait_gone(env, procs.values(), 5, "tmux server and pane")
    wait_session_removed(env, daemon, session)
    assert f"user {user.name} is not in KeepAllowUsers=nobody" in daemon.log()
