"""Debian's pam_elogind.so (libpam-elogind, elogind 246) against `logoutd --dbus`.

The package conflicts with libpam-systemd, so it is never installed: it is unpacked into a temp
dir (harness/debs.py) and the test PAM service names the module by absolute path.  Like
pam_systemd it is libsystemd's sd-bus inside (elogind's copy): it connects to
$DBUS_SYSTEM_BUS_ADDRESS, else unix:path=/run/dbus/system_bus_socket, and calls logind only if
/run/systemd/seats/ exists.  Debian 12's 246 sends plain CreateSession (its binary has no
CreateSessionWithPIDFD; elogind >= 255 tries that first, see tests/adapters/test_login1_bus.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import debs
from tests.integration.harness.checks import assert_in_scope, wait_gone, wait_session_removed
from tests.integration.harness.login import script
from tests.integration.harness.pam import PamService
from tests.integration.harness.procs import wait_for
from tests.integration.test_login1 import SHOW_ENV, _env_lines

MODULE = "lib/x86_64-linux-gnu/security/pam_elogind.so"


@pytest.fixture
def elogind_pam(env) -> PamService:
    root = debs.unpacked("libpam-elogind")
    if isinstance(root, str):
        pytest.skip(f"no pam_elogind.so: {root}")
    found = [root / MODULE, *root.glob("**/security/pam_elogind.so")]
    module = next((p for p in found if p.exists()), None)
    if module is None:
        pytest.skip(f"libpam-elogind has no pam_elogind.so under {root}")
    return env.pam(systemd=True, module=str(module))


def test_ssh_login_through_pam_elogind(env, user, elogind_pam, bus, dbus_daemon):
    daemon = dbus_daemon
    monitor = bus.monitor(env.cleanup)
    login = env.login("ssh", elogind_pam, user, script("nohup", "daemon", extra=SHOW_ENV),
                      bus=bus)
    procs = login.wait_ready()
    env.track(procs.values())
    assert set(procs) == {"nohup", "daemon", "shell"}, login.report()

    session = daemon.wait_session(user.name)
    sid = session["id"]
    runtime = daemon.user_runtime_root / str(user.uid)
    assert _env_lines(login.lines) == {
        "XDG_SESSION_ID": sid, "XDG_RUNTIME_DIR": str(runtime),
        "XDG_SESSION_TYPE": "tty", "XDG_SESSION_CLASS": "user",
    }, login.report()
    assert session["service"] == elogind_pam.name and session["remote_host"] == "127.0.0.1"
    assert_in_scope(env, session, procs.values())

    # What pam_elogind sent: the method it chose, and logoutd's answer with the FIFO's fd.
    def creates():
        return [c for c in monitor.messages() if c.kind == "method call"
                and str(c.fields.get("member", "")).startswith("CreateSession")
                and c.uint32s()[:1] == [user.uid]]
    [create] = wait_for(creates, 10, "pam_elogind's CreateSession",
                        details=lambda: monitor.text()[-6000:])
    reply = monitor.wait_reply(create)
    assert reply.kind == "method return" and reply.strings()[:1] == [sid], reply
    assert "file descriptor" in reply.body, reply
    print(f"pam_elogind called {create.fields.get('member')}")

    assert login.logout() == 0, login.report()
    [release] = monitor.wait_calls("ReleaseSession", where=lambda m: m.strings() == [sid])
    assert monitor.wait_reply(release).kind == "method return"
    wait_gone(env, procs.values(), 10, "nohup job, setsid daemon and shell")
    wait_session_removed(env, daemon, session)
    wait_for(lambda: not runtime.exists(), 10, f"{runtime} to be removed", details=env.describe)
    assert not Path(daemon.runtime_dir / "login1" / f"{sid}.ref").exists()
