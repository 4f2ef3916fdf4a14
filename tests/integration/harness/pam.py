"""Test PAM services: /etc/pam.d/logoutd-test-<hex> and private su/su-l/runuser(-l) copies.

The machine's own PAM files are never edited: the sshd under test runs under its own service
name, and su/runuser see the test copies only through bind mounts inside a private mount
namespace (see `namespace_prefix`).
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

PAM_DIR = Path("/etc/pam.d")
PREFIX = "logoutd-test-"
# The stock files replaced (inside a private mount namespace only) by the test stack.
OVERRIDDEN = ("su", "su-l", "runuser", "runuser-l")


def stack(hook: Path | None, runtime_dir: Path, socket: Path | None = None, timeout: float = 2.0,
          *, su: bool = False, systemd: bool = False, module: str = "pam_systemd.so",
          open_only: bool = False) -> str:
    """A minimal PAM stack: no password, pam_unix session, then the logoutd hook.

    The hook gets the test's `--runtime-dir` (it talks to RUNTIME_DIR/root.sock, and its
    fail-safe path finds the test's cgroup subtree in RUNTIME_DIR/cgroup-root, never the
    machine's); `socket` adds `--socket` (a test's dead socket, say).

    common-session is deliberately not included: it holds pam_systemd.so, and this machine has
    no system bus.  `systemd=True` ends the stack with stock pam_systemd.so (optional, as in
    Debian's common-session) instead; it then talks to logoutd's org.freedesktop.login1 on the
    test's private bus (see harness/bus.py).  `module` replaces pam_systemd.so by another
    login1 client (pam_elogind.so by absolute path, say).  `open_only`: the hook line has
    `type=open_session`, as the installer prints it (no hook run at close).
    """
    lines = []
    if su:
        lines.append("auth      sufficient pam_rootok.so")
    lines += [
        "auth      sufficient pam_permit.so",
        "account   required   pam_permit.so",
        "password  required   pam_deny.so",
        "session   optional   pam_loginuid.so",
        "session   required   pam_unix.so",
    ]
    if hook is not None:
        socket_arg = f" --socket {socket}" if socket is not None else ""
        lines.append(
            f"session   optional   pam_exec.so quiet seteuid "
            f"{'type=open_session ' if open_only else ''}{hook} "
            f"--runtime-dir {runtime_dir}{socket_arg} --timeout {timeout:g}"
        )
    if systemd:
        lines.append(f"session   optional   {module} debug")
    return "# logoutd integration test stack (removed after the test)\n" + "\n".join(lines) + "\n"


def run_hook(hook: Path, env: dict[str, str] | None = None,
             args: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Execute the installed hook directly (as pam_exec would), by path so the shebang is used."""
    return subprocess.run([str(hook), *args], env=env or {"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=10)


def install_test_hook(dest: Path) -> None:
    """`logoutd.pam.install.install_hook(dest)`, then check the script really starts.

    pam_exec is optional, so a hook that cannot start (a bad shebang, say) would silently
    give every login no session: fail loudly here instead.
    """
    from logoutd.pam.install import install_hook

    install_hook(dest)
    result = run_hook(dest)
    if result.returncode != 0:
        raise RuntimeError(f"installed hook {dest} does not start: {result}")


@dataclass
class PamService:
    name: str  # service name == file name under /etc/pam.d
    file: Path  # /etc/pam.d/<name>
    overrides: dict[str, Path]  # stock name (su, su-l, ...) -> test copy in the temp dir
    hook: Path | None
    runtime_dir: Path  # the hook's --runtime-dir
    socket: Path | None  # its --socket, if any (else RUNTIME_DIR/root.sock)
    systemd: bool = False  # pam_systemd.so instead of the hook

    def namespace_prefix(self) -> str:
        """Shell commands that bind the test copies over the stock su/runuser files.

        Only valid inside `unshare --mount --propagation private`.
        """
        return " && ".join(
            f"mount --bind {shlex.quote(str(src))} {shlex.quote(str(PAM_DIR / stock))}"
            for stock, src in self.overrides.items()
        )


def install_service(
    tmp: Path, hexid: str, runtime_dir: Path, socket: Path | None = None, *, hook: bool = True,
    suffix: str = "", systemd: bool = False, timeout: float = 2.0, module: str = "pam_systemd.so",
    open_only: bool = False,
) -> PamService:
    """Install the hook into `tmp`, write /etc/pam.d/logoutd-test-<hex><suffix> and su copies.

    `systemd=True`: pam_systemd.so and no hook (whatever `hook` says).
    """
    hook_path: Path | None = None
    if hook and not systemd:
        hook_path = tmp / "logoutd-pam"
        if not hook_path.exists():
            install_test_hook(hook_path)
    name = f"{PREFIX}{hexid}{suffix}"
    file = PAM_DIR / name
    if file.exists():
        raise FileExistsError(file)
    file.write_text(stack(hook_path, runtime_dir, socket, timeout, systemd=systemd, module=module,
                          open_only=open_only))
    file.chmod(0o644)
    overrides = {}
    for stock in OVERRIDDEN:
        copy = tmp / f"pam-{stock}{suffix}"
        copy.write_text(stack(hook_path, runtime_dir, socket, timeout, su=True, systemd=systemd,
                              module=module, open_only=open_only))
        copy.chmod(0o644)
        overrides[stock] = copy
    return PamService(name, file, overrides, hook_path, runtime_dir, socket, systemd)


def remove_service(service: PamService) -> None:
    if not service.file.name.startswith(PREFIX) or service.file.parent != PAM_DIR:
        raise ValueError(f"refusing to remove {service.file}")
    service.file.unlink(missing_ok=True)
