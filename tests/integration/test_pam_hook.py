"""The PAM hook as installed by `install_hook()` starts, and never holds up a login."""

from __future__ import annotations

import json
import time

from tests.integration.harness.pam import run_hook


def test_installed_hook_starts(env):
    """pam_exec executes the file itself: its shebang must work (exit 0, nothing on stderr)."""
    from logoutd.pam.install import install_hook

    hook = env.tmp / "hook-as-installed"
    install_hook(hook)
    first_line = hook.read_text().splitlines()[0]
    r = run_hook(hook)
    assert r.returncode == 0 and not r.stderr, (
        f"installed hook does not start (shebang {first_line!r}): rc {r.returncode}, "
        f"stderr {r.stderr!r}")


def test_hook_without_daemon_exits_zero_fast(env, user):
    """Nothing listens: open and close return at once; open tracks its leader itself (fail
    safe) in the test's subtree, named by RUNTIME_DIR/cgroup-root."""
    from logoutd.pam.install import install_hook

    hook = env.tmp / "hook"
    install_hook(hook)
    # Run it the way pam_exec would, through the interpreter named in the shebang.
    interp = hook.read_text().splitlines()[0][2:].split()[0]
    for kind in ("open_session", "close_session"):
        t0 = time.monotonic()
        r = run_hook_via(env, interp, hook, kind, user.name, env.tmp / "nowhere.sock")
        assert r.returncode == 0, r
        assert time.monotonic() - t0 < 1.5, f"{kind} took {time.monotonic() - t0:.2f} s"
    [record] = (env.runtime_dir / "hook").glob("*.json")
    assert (env.cgroup_root / json.loads(record.read_text())["scope"]).is_dir()


def test_hook_logs_what_a_live_daemon_refuses_as_refused(env, user, start_daemon):
    """The installed hook against the real daemon's answers (stderr carries the syslog lines
    with --debug): a refused open is logged as refused, a close of no session is not logged."""
    from logoutd.pam.install import install_hook

    daemon = start_daemon("[Login]\nSessionsMax=0\n")
    hook = env.tmp / "hook"
    install_hook(hook)
    interp = hook.read_text().splitlines()[0][2:].split()[0]
    r = run_hook_via(env, interp, hook, "open_session", user.name, daemon.root_socket, "--debug")
    assert r.returncode == 0, r
    [line] = r.stderr.splitlines()
    assert "open_session for leader" in line and "refused by logoutd" in line, r.stderr
    assert "limits_exceeded" in line and "Maximum number of sessions (0)" in line, r.stderr
    assert daemon.call("list_sessions")["sessions"] == []
    assert not list((env.runtime_dir / "hook").glob("*.json"))  # refused is answered: no fail-safe
    r = run_hook_via(env, interp, hook, "close_session", user.name, daemon.root_socket, "--debug")
    assert r.returncode == 0 and r.stderr == "", r


def run_hook_via(env, interp, hook, kind, user, socket, *extra):
    import subprocess

    environ = {"PATH": "/usr/bin:/bin", "PAM_TYPE": kind, "PAM_USER": user,
               "PAM_SERVICE": "logoutd-test", "PAM_TTY": "ssh"}
    # sh stands in for the PAM process, the hook's parent and so the leader it moves: never
    # pytest itself (the test's cgroup subtree is killed at cleanup).
    return subprocess.run(["sh", "-c", '"$@"; exit 0', "sh", interp, "-I", "-S", str(hook),
                           "--runtime-dir", str(env.runtime_dir), "--socket", str(socket),
                           "--timeout", "2", *extra], env=environ, capture_output=True, text=True,
                          timeout=10)


def test_open_only_line_ends_the_session_when_its_leader_exits(env, user, start_daemon):
    """The installer's default line (`type=open_session`): no hook run at close, and still the
    su leader's exit ends the session and kills what it left."""
    from tests.integration.harness.checks import wait_gone
    from tests.integration.harness.login import script

    daemon = start_daemon()
    pam = env.pam(open_only=True)
    assert "seteuid type=open_session " in pam.overrides["su-l"].read_text()
    login = env.login("su", pam, user, script("nohup"))
    procs = login.wait_ready()
    assert len(daemon.sessions(user.name)) == 1, daemon.sessions()
    leftovers = [p for name, p in procs.items() if name != "shell"]
    assert leftovers, procs
    assert login.logout() == 0
    took = wait_gone(env, leftovers, 15, "the nohup job after an open-only logout")
    daemon.wait_for(lambda: daemon.sessions(user.name) == [], 15, "the session gone")
    print(f"open-only su session: leftovers gone {took * 1000:.0f} ms after logout")
