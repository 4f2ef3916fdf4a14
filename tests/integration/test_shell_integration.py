"""contrib/profile.d/logoutd.sh over real ssh logins: tmux and screen started as usual survive
logout and are reachable at the next login; where policy denies keeping, one warning says so
and they are gone after logout."""

from __future__ import annotations

import re
from pathlib import Path

from tests.integration.harness.checks import assert_alive_for, wait_gone
from tests.integration.harness.login import script
from tests.readable import for_users

REPO = Path(__file__).resolve().parents[2]


def _integration(env) -> str:
    """What /etc/profile.d would do, plus where the test's logoutctl and daemon are."""
    src = for_users(REPO / "src")
    profile = for_users(REPO / "contrib" / "profile.d" / "logoutd.sh")
    return (f"export LOGOUTD_SOCKET={env.socket} PYTHONPATH={src} "
            "LOGOUTCTL='/usr/bin/python3 -m logoutd.cli.ctl'; "
            f". {profile}")


START = (
    "tmux new-session -d -s keep 'sleep 1000' 2>&1; "
    'echo "PID tmux $(command tmux display-message -p -t keep "#{pid}")"; '
    "screen -dmS keep sleep 1001 2>&1; sleep 0.3; "
    'echo "PID screen $(command screen -ls | sed -n "s/^[[:space:]]*\\([0-9]*\\)\\.keep.*/\\1/p")"'
)


def _login(env, sshd, user, daemon):
    login = sshd.login(user, script(extra=f"{_integration(env)}; {START}"))
    procs = login.wait_ready()
    env.track(procs.values())
    daemon.wait_session(user.name, state="active")
    return login, procs


def test_tmux_and_screen_survive_logout(env, user, pam, start_daemon):
    daemon = start_daemon("[Login]\nUserStopDelaySec=60s\n")
    sshd = env.sshd(pam)
    login, procs = _login(env, sshd, user, daemon)
    assert set(procs) == {"tmux", "screen"}, login.report()
    for proc in procs.values():
        assert re.search(r"/user@\d+\.service/app\.slice/run-u\d+\.scope$", proc.cgroup()), \
            proc.describe()
    assert login.logout() == 0, login.report()
    daemon.wait_for(lambda: not daemon.sessions(user.name), 10, "the session to end")
    assert_alive_for(env, procs.values(), 1.0)

    again = sshd.run(user, "tmux has-session -t keep && echo TMUX-OK; screen -ls keep | grep -c keep")
    assert "TMUX-OK" in again.stdout and again.stdout.split()[-1] == "1", again
    assert all(p.alive() for p in procs.values())


def test_denied_by_policy_warns_and_is_gone(env, user, pam, start_daemon):
    daemon = start_daemon("[Login]\nUserStopDelaySec=60s\n[Policy]\nKeepAllowUsers=nobody\n")
    sshd = env.sshd(pam)
    login, procs = _login(env, sshd, user, daemon)
    warnings = [line for line in login.lines if line.startswith("logoutd: ")]
    assert any(w.startswith("logoutd: tmux will be terminated at logout: ") for w in warnings), \
        login.report()
    assert any(w.startswith("logoutd: screen will be terminated at logout: ") for w in warnings), \
        login.report()
    assert all("KeepAllowUsers=nobody" in w for w in warnings), warnings
    assert login.logout() == 0, login.report()
    wait_gone(env, procs.values(), 5, "tmux and screen")
