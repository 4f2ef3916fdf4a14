"""SetUserLinger through polkit when polkitd is on the bus, else through logoutd's own policy.

The real polkitd (Debian's polkitd 122 with systemd's org.freedesktop.login1.policy) runs on the
test's private bus. Its defaults: set-self-linger is allowed for anyone (allow_any=yes),
set-user-linger needs an administrator (auth_admin_keep, and there is no agent here). logoutd's
`LingerSelfAllow=` is set to deny everyone, so which authority decided shows in the outcome.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration.harness.cleanup import Phase
from tests.integration.harness.loginctl import loginctl
from tests.integration.harness.procs import Proc, kill_tree, wait_for

POLKITD = Path("/usr/lib/polkit-1/polkitd")
POLKIT = "org.freedesktop.PolicyKit1"
POLICY = Path("/usr/share/polkit-1/actions/org.freedesktop.login1.policy")
INTERACTIVE_REQUIRED = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
DENY_SELF_LINGER = "[Policy]\nLingerSelfAllow=root\n"


def start_polkitd(env, bus, argv: list[str] | None = None) -> subprocess.Popen[bytes]:
    """polkitd on the test's bus (`argv`: how to start it; its log is env.tmp/polkitd.log),
    stopped by the test's cleanup."""
    if not POLKITD.exists() or not POLICY.exists():
        pytest.skip("polkitd or systemd's login1 polkit policy not installed")
    log = env.tmp / "polkitd.log"
    with open(log, "ab") as out:
        popen = subprocess.Popen(argv or [str(POLKITD), "--no-debug"],
                                 env={**bus.env(), "PATH": "/usr/bin:/bin"},
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out)
    proc = Proc.of(popen.pid, "polkitd")

    def stop() -> None:
        if popen.poll() is None:
            kill_tree(proc)
        popen.wait(timeout=10)

    env.cleanup.add(Phase.PROCESSES, "kill polkitd", stop)
    wait_for(lambda: bus.name_owner_pid(POLKIT) is not None, 15, "polkitd on the bus",
             details=lambda: log.read_text(errors="replace"))
    return popen


def test_linger_is_decided_by_polkit_when_it_runs(env, user, user2, bus):
    daemon = env.daemon(DENY_SELF_LINGER, dbus=bus)
    start_polkitd(env, bus)
    monitor = bus.monitor(env.cleanup)
    linger = daemon.state_dir / "linger"

    # set-self-linger: polkit allows it, although LingerSelfAllow= would not.
    own = loginctl(bus, "enable-linger", as_user=user)
    assert own.returncode == 0, own
    assert (linger / user.name).exists()
    assert {u["name"]: u["linger"] for u in daemon.users()} == {user.name: True}

    # set-user-linger for someone else: polkit wants an administrator; nothing changes.
    other = loginctl(bus, "enable-linger", user.name, as_user=user2)
    assert other.returncode != 0, other
    assert "Could not enable linger" in other.stderr, other
    assert "authentication" in other.stderr.lower() or "denied" in other.stderr.lower(), other
    assert not (linger / user2.name).exists()
    asked = monitor.calls("SetUserLinger", destination="org.freedesktop.login1")
    assert len(asked) == 2, [str(c) for c in asked]
    assert monitor.wait_reply(asked[0]).kind != "error"
    refusal = monitor.wait_reply(asked[1])
    assert refusal.kind == "error" and any(
        "org.freedesktop.login1.set-user-linger" in text for text in refusal.strings()), str(refusal)
    # auth_admin_keep and no agent: polkit's challenge, answered with sd-bus' error name for it.
    assert refusal.fields.get("error_name") == INTERACTIVE_REQUIRED, str(refusal)
    denied_disable = loginctl(bus, "disable-linger", user.name, as_user=user2)
    assert denied_disable.returncode != 0, denied_disable
    assert (linger / user.name).exists()

    # The owner takes it back (polkit again), root needs no one.
    assert loginctl(bus, "disable-linger", as_user=user).returncode == 0
    assert not (linger / user.name).exists()
    assert loginctl(bus, "enable-linger", user2.name).returncode == 0
    assert (linger / user2.name).exists()
    assert loginctl(bus, "disable-linger", user2.name).returncode == 0


def test_without_polkit_logoutds_own_policy_decides(env, user, bus):
    daemon = env.daemon(DENY_SELF_LINGER, dbus=bus)
    monitor = bus.monitor(env.cleanup)
    assert bus.name_owner_pid(POLKIT) is None
    refused = loginctl(bus, "enable-linger", as_user=user)
    assert refused.returncode != 0, refused
    assert "Access denied" in refused.stderr, refused
    # sd-bus clients print only strerror(EACCES); the error's message names the rule.
    [asked] = monitor.calls("SetUserLinger", destination="org.freedesktop.login1")
    reply = monitor.wait_reply(asked)
    assert reply.fields.get("error_name") == "org.freedesktop.DBus.Error.AccessDenied", str(reply)
    assert any("LingerSelfAllow=root" in text for text in reply.strings()), str(reply)
    assert not (daemon.state_dir / "linger" / user.name).exists()
    assert daemon.users() == []
