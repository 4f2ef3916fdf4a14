"""The PAM hook as installed by `install_hook()` starts, and never holds up a login."""

from __future__ import annotations

import time

from harness.pam import run_hook


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
    from logoutd.pam.install import install_hook

    hook = env.tmp / "hook"
    install_hook(hook)
    # Run it the way pam_exec would, through the interpreter named in the shebang.
    interp = hook.read_text().splitlines()[0][2:].split()[0]
    for kind in ("open_session", "close_session"):
        t0 = time.monotonic()
        r = run_hook_via(interp, hook, kind, user.name, env.tmp / "nowhere.sock")
        assert r.returncode == 0, r
        assert time.monotonic() - t0 < 1.5, f"{kind} took {time.monotonic() - t0:.2f} s"


def run_hook_via(interp, hook, kind, user, socket):
    import subprocess

    environ = {"PATH": "/usr/bin:/bin", "PAM_TYPE": kind, "PAM_USER": user,
               "PAM_SERVICE": "logoutd-test", "PAM_TTY": "ssh"}
    return subprocess.run([interp, "-I", "-S", str(hook), "--socket", str(socket),
                           "--timeout", "2"], env=environ, capture_output=True, text=True,
                          timeout=10)
