"""Adversarial sessions at logout: a (bounded) fork storm, processes that setsid/double-fork
again and again while being killed, stopped processes, multithreaded processes, processes
ignoring every catchable signal.  After logout no process of the user survives and the scope
is gone within SessionStopTimeoutSec= + a few seconds.  And SessionsMax= is enforced with a
clear error while the login itself still succeeds.

Every storm is bounded by the script itself (a process count and a wall-clock deadline), so
even a broken daemon cannot let it run away.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from logoutd.errors import LimitsExceeded
from tests.integration.harness.checks import assert_in_scope
from tests.integration.harness.login import script
from tests.integration.harness.procs import cgroup_of, pids_of_real_uid, wait_for

STOP_TIMEOUT = 2.0  # SessionStopTimeoutSec= of the harness' base drop-in
SLACK = 4.0  # seconds allowed beyond it for zero survivors
PY = "/usr/bin/python3"

# Signals 1..31 but SIGKILL and SIGSTOP, as the SigIgn mask of /proc/PID/status.
ALL_CATCHABLE = sum(1 << (s - 1) for s in range(1, 32) if s not in (signal.SIGKILL, signal.SIGSTOP))

# -- helper scripts, written to the test's temp dir (world-readable) -------------------------

# A fork storm that ignores SIGTERM/SIGHUP: keeps forking short-lived sleeps, at most 400 of
# them, one per >= 10 ms (so it ends by itself within a few seconds; no wall clock involved,
# the VM's clock may jump).
STORM = """\
trap '' TERM HUP INT
n=0
while [ $n -lt 400 ]; do
    sleep 0.3 &
    n=$((n + 1))
    sleep 0.01
done
wait
"""

# A hopper: ignores SIGTERM/SIGHUP, double-forks into a new session (setsid) and exits, again
# and again (one generation per >= 50 ms): at most 300 generations (~15 s) per chain.
HOPPER = """\
trap '' TERM HUP INT
g=$1
[ "$g" -lt 300 ] || exit 0
sleep 0.05
( setsid sh "$0" $((g + 1)) </dev/null >/dev/null 2>&1 & )
"""

# Several threads sleeping; SIGTERM ignored (only the SIGKILL round ends it).
THREADS = """\
import signal, threading, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
for _ in range(8):
    threading.Thread(target=time.sleep, args=(1000,), daemon=True).start()
time.sleep(1000)
"""

# Ignores every signal it can (SIGKILL and SIGSTOP cannot be ignored), then sleeps.
IGNORE_ALL = """\
import signal, time
for s in signal.valid_signals():
    try:
        signal.signal(s, signal.SIG_IGN)
    except (OSError, ValueError):
        pass
time.sleep(1000)
"""


def write_helpers(tmp: Path) -> dict[str, Path]:
    files = {"storm.sh": STORM, "hopper.sh": HOPPER, "threads.py": THREADS,
             "ignore_all.py": IGNORE_ALL}
    out = {}
    for name, text in files.items():
        path = tmp / name
        path.write_text(text)
        path.chmod(0o644)
        out[name] = path
    return out


def snippets(h: dict[str, Path]) -> dict[str, str]:
    """Bash snippets run in the session; each prints `PID <label> <pid>` once set up."""
    return {
        "storm": (f"sh {h['storm.sh']} >/dev/null 2>&1 </dev/null & _p=$!; _ign $_p 0x4001; "
                  # let it get going: wait until it has at least 10 children
                  'for ((_i = 0; _i < 500; _i++)); do '
                  '[ "$(pgrep -c -P $_p)" -ge 10 ] && break; sleep 0.01; done; '
                  'echo "PID storm $_p"'),
        "hopper": "; ".join(
            f"sh {h['hopper.sh']} 0 >/dev/null 2>&1 </dev/null"
            for _ in range(5)) + "; sleep 0.3; echo \"PID hopper_shell $$\"",
        "stopped": (f"{PY} {h['threads.py']} >/dev/null 2>&1 </dev/null & _p=$!; _ign $_p 0x4001; "
                    'kill -STOP $_p; '
                    'until grep -q "^State:.*T" /proc/$_p/status; do sleep 0.01; done; '
                    'sh -c \'trap "" TERM HUP; kill -STOP $$; exit 0\' </dev/null & _q=$!; '
                    'until grep -q "^State:.*T" /proc/$_q/status; do sleep 0.01; done; '
                    'echo "PID stopped_threads $_p"; echo "PID stopped_sh $_q"'),
        "threads": (f"{PY} {h['threads.py']} >/dev/null 2>&1 </dev/null & _p=$!; "
                    "_ign $_p 0x4001; "
                    'until [ "$(ls /proc/$_p/task | wc -l)" -ge 9 ]; do sleep 0.01; done; '
                    'echo "PID threads $_p"'),
        "ignore_all": (f"setsid {PY} {h['ignore_all.py']} >/dev/null 2>&1 </dev/null & _p=$!; "
                       f"_ign $_p {ALL_CATCHABLE:#x}; "
                       'echo "PID ignore_all $_p"'),
    }


CASES = {
    "fork_storm": ["storm"],
    "setsid_hoppers": ["hopper"],
    "stopped": ["stopped"],
    "multithreaded": ["threads"],
    "ignore_all": ["ignore_all"],
    "all_at_once": ["storm", "hopper", "stopped", "threads", "ignore_all"],
}


@pytest.mark.parametrize("case", list(CASES))
def test_adversarial_session_leaves_zero_survivors(env, user, pam, daemon, case):
    helpers = write_helpers(env.tmp)
    parts = snippets(helpers)
    extra = "; ".join(parts[k] for k in CASES[case])
    login = env.login("su", pam, user, script(extra=extra))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    assert_in_scope(env, session, procs.values())
    before = pids_of_real_uid(user.uid)
    deadline = time.monotonic() + 30  # a loaded machine (load 70 seen) forks slowly
    while "storm" in CASES[case] and len(before) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)
        before = pids_of_real_uid(user.uid)
    if "storm" in CASES[case]:
        assert len(before) >= 10, f"the fork storm is not storming: {before}"
    scope = env.scope_dir(session["scope"])
    # Every process of the user is in the session's scope (nothing escaped before logout).
    stray = [p for p in before if cgroup_of(p) not in (None, env.rel(session["scope"]))]
    assert not stray, f"processes outside the scope before logout: {stray}"

    t0 = time.monotonic()
    assert login.logout() == 0, login.report()

    def zero_survivors() -> bool:
        return not pids_of_real_uid(user.uid) and not scope.exists()

    wait_for(zero_survivors, STOP_TIMEOUT + SLACK, f"zero survivors of uid {user.uid} ({case})",
             details=lambda: f"left: {pids_of_real_uid(user.uid)}\n{env.describe()}")
    elapsed = time.monotonic() - t0
    print(f"\n{case}: {len(before)} processes of the user at logout; zero survivors and scope "
          f"gone {elapsed:.2f} s after logout")
    daemon.wait_for(lambda: daemon.sessions(user.name) == [], 5, "the session to be removed")
    assert daemon.running()
    # Nothing came back afterwards (a hopper or the storm re-forking after the kill).
    time.sleep(0.5)
    assert not pids_of_real_uid(user.uid), pids_of_real_uid(user.uid)


def test_sessions_max_is_enforced_with_a_clear_error(env, make_user, pam, start_daemon):
    daemon = start_daemon("[Login]\nSessionsMax=2\n")
    users = [make_user() for _ in range(3)]
    logins = []
    for u in users[:2]:
        login = env.login("su", pam, u, script())
        login.wait_ready()
        daemon.wait_session(u.name)
        logins.append(login)

    # The third login succeeds (the PAM hook never fails a login) but gets no session.
    third = env.login("su", pam, users[2], script(extra='echo "PID shell $$"'))
    procs = third.wait_ready()
    assert "shell" in procs, third.report()
    daemon.wait_for(lambda: "Maximum number of sessions (2) reached" in daemon.log(), 5,
                    "the refusal in the daemon log")
    assert daemon.sessions(users[2].name) == []
    assert len(daemon.sessions()) == 2
    assert "session-" not in str(procs["shell"].cgroup()), procs["shell"].describe()

    # The API says it too, to root creating a session directly.
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with pytest.raises(LimitsExceeded, match=r"Maximum number of sessions \(2\) reached"):
            daemon.call("create_session", uid=users[2].uid, leader=sleeper.pid, service="test")
        assert cgroup_of(sleeper.pid) == cgroup_of(os.getpid()), \
            "a refused leader was moved anyway"
    finally:
        sleeper.kill()
        sleeper.wait()

    # The limit counts live sessions: after one logout, a new login gets a session again.
    assert third.logout() == 0
    assert logins[0].logout() == 0
    daemon.wait_for(lambda: daemon.sessions(users[0].name) == [], STOP_TIMEOUT + 5,
                    "the first session to be removed")
    again = env.login("su", pam, users[2], script())
    again.wait_ready()
    daemon.wait_session(users[2].name)
    for login in (again, logins[1]):
        assert login.logout() == 0


# Forks as fast as perl can: four forkers, each at most 5000 children that sleep 0.3 s (about a
# thousand at once; it ends by itself within seconds), all ignoring SIGTERM/SIGHUP. On the 2-vCPU
# VM this is 3000-4500 forks/s: the SIGTERM round sees new pids for up to ~40 passes.
FAST_STORM = """\
use POSIX ":sys_wait_h";
$SIG{TERM} = $SIG{HUP} = $SIG{INT} = "IGNORE";
for (2..4) { last unless fork; }
for (1..5000) {
    if (!fork) { select(undef, undef, undef, 0.3); POSIX::_exit(0); }
    1 while waitpid(-1, WNOHANG) > 0;
}
1 while wait() > 0;
"""


def test_fast_fork_storm_cannot_keep_the_sigterm_round_looping(env, user, pam, daemon):
    """Issue 11: the SIGTERM round is bounded (passes, time), so the daemon keeps answering
    while a storm forks; cgroup.kill at SessionStopTimeoutSec= ends the storm. (On 2 vCPUs no
    storm made the old unbounded round spin longer than ~0.3 s; the bound itself is pinned by
    tests/unit/test_signal_round.py.)"""
    from logoutd.api.client import Client

    storm = env.tmp / "fast_storm.pl"
    storm.write_text(FAST_STORM)
    storm.chmod(0o644)
    extra = (f"perl {storm} >/dev/null 2>&1 </dev/null & _p=$!; _ign $_p 0x4001; "
             'for ((_i = 0; _i < 500; _i++)); do '
             '[ "$(pgrep -c -u $(id -u))" -ge 50 ] && break; sleep 0.01; done; '
             'echo "PID storm $_p"')
    login = env.login("su", pam, user, script(extra=extra))
    procs = login.wait_ready()
    env.track(procs.values())
    session = daemon.wait_session(user.name)
    scope = env.scope_dir(session["scope"])
    # The count swings as the storm's children come and go (and with the machine's load):
    # wait for a moment with at least 50 of them, and log out then.
    wait_for(lambda: len(pids_of_real_uid(user.uid)) >= 50, 10, "the storm to reach 50 processes",
             details=lambda: f"{len(pids_of_real_uid(user.uid))} processes")
    before = len(pids_of_real_uid(user.uid))

    t0 = time.monotonic()
    assert login.logout() == 0, login.report()
    latencies = []
    while time.monotonic() - t0 < STOP_TIMEOUT + 1:  # through the round and the SIGKILL
        t = time.monotonic()
        with Client(daemon.root_socket, timeout=5.0) as client:
            client.call("status")
        latencies.append(time.monotonic() - t)
        time.sleep(0.05)
    worst = max(latencies)

    def zero_survivors() -> bool:
        return not pids_of_real_uid(user.uid) and not scope.exists()

    wait_for(zero_survivors, STOP_TIMEOUT + SLACK, f"zero survivors of uid {user.uid}",
             details=lambda: f"left: {len(pids_of_real_uid(user.uid))}\n{env.describe()}")
    elapsed = time.monotonic() - t0
    print(f"\nfast fork storm: {before} processes at logout; root's status worst "
          f"{worst * 1000:.0f} ms over {len(latencies)} calls; zero survivors {elapsed:.2f} s "
          f"after logout; bound hit: {'new processes kept appearing' in daemon.log()}")
    assert worst < 1.0, f"root's status took {worst:.2f} s during the SIGTERM round"
    daemon.wait_for(lambda: daemon.sessions(user.name) == [], 5, "the session to be removed")
    time.sleep(0.5)
    assert not pids_of_real_uid(user.uid), pids_of_real_uid(user.uid)
    assert daemon.running() and "Traceback" not in daemon.log()
