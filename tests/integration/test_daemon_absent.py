"""Without a (working) daemon, logins still work, cost at most a few seconds more, and are
tracked all the same: the hook puts each into a session scope of its own and records it for the
daemon to adopt (fail safe, DESIGN §10; tests/integration/test_failsafe.py shows the adoption).

Compared with the same sshd and PAM stack without the hook line.  "missing": the socket path
points nowhere; "stale": a socket file nobody listens on; "hung": a listener that accepts and
never answers (the hook's --timeout 2 bounds each call)."""

from __future__ import annotations

import json
import socket
import statistics
import time

import pytest

from tests.integration.harness.login import READY

ROUNDS = 3


def _time_login(sshd, user):
    """(seconds until the command ran, seconds until ssh exited) for one login."""
    login = sshd.login(user, f'id -un; echo "{READY}"')
    t0 = time.monotonic()
    login.wait_ready(timeout=30)
    t_ready = time.monotonic() - t0
    assert login.wait(timeout=30) == 0, login.report()
    t_total = time.monotonic() - t0
    assert login.lines[0] == user.name, login.report()
    return t_ready, t_total


@pytest.mark.parametrize("mode", ["missing", "stale", "hung"])
def test_login_without_daemon(env, user, mode):
    dead_socket = env.tmp / f"nowhere-{mode}.sock"
    listener = None
    if mode in ("stale", "hung"):
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(dead_socket))
        if mode == "stale":
            listener.close()  # the file stays, nobody listens: ECONNREFUSED
            listener = None
        else:
            listener.listen(64)  # connections queue up, nothing is ever read or answered
    try:
        hooked = env.sshd(env.pam(socket=dead_socket))
        plain = env.sshd(env.pam(hook=False, suffix="-nohook"))
        _time_login(plain, user)  # warm caches
        base = [_time_login(plain, user) for _ in range(ROUNDS)]
        slow = [_time_login(hooked, user) for _ in range(ROUNDS)]
    finally:
        if listener is not None:
            listener.close()

    base_ready = statistics.median(t for t, _ in base)
    slow_ready = statistics.median(t for t, _ in slow)
    base_total = statistics.median(t for _, t in base)
    slow_total = statistics.median(t for _, t in slow)
    detail = f"without hook {base}, with hook ({mode}) {slow}"
    extra = slow_ready - base_ready
    assert extra < 3.0, f"login took {extra:.2f} s extra; {detail}"
    if mode == "hung":
        # open and close each wait for --timeout 2 at most
        assert slow_total - base_total < 2 * 2.0 + 1.0, detail
    else:
        assert slow_total - base_total < 3.0, detail
        assert slow_ready - base_ready < 1.0, f"refused connection should be instant; {detail}"
    # Each hooked login (and only those) got a scope of its own, recorded for the daemon.
    records = [json.loads(p.read_text()) for p in (env.runtime_dir / "hook").glob("*.json")]
    assert len(records) == ROUNDS, records
    assert all(r["uid"] == user.uid for r in records), records
    scopes = sorted(p.name for p in (env.user_slice() / f"user-{user.uid}.slice").iterdir()
                    if p.name.startswith("session-"))
    assert scopes == sorted(f"session-{r['id']}.scope" for r in records), (scopes, records)
