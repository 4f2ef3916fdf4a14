"""A private sshd on 127.0.0.1 whose PAM service is the test service.

OpenSSH names its PAM service after its program name, so the daemon is started through a
symlink `<tmp>/logoutd-test-<hex> -> /usr/sbin/sshd` (by absolute path: sshd re-execs itself).
It runs in a private mount namespace where su/su-l/runuser/runuser-l are the test copies, so
`su` inside an ssh session goes through the test stack (and the hook) too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .bus import PrivateBus, namespace_prefix
from .login import Login
from .pam import PamService
from .procs import Proc, kill_tree
from .users import TestUser

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _banner(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


@dataclass
class Sshd:
    tmp: Path
    pam: PamService
    register: Callable[[Login], None] = field(default=lambda login: None)
    port: int = 0
    proc: Proc | None = None
    popen: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    link: Path | None = None
    bus: PrivateBus | None = None  # its system bus; /run/systemd/seats in its namespace
    # A directory bound over /run in its namespace (sshd writes utmp at /var/run/utmp, i.e.
    # /run/utmp; the machine's /run is never written): see `private_run()`.
    run_dir: Path | None = None

    def start(self, timeout: float = 15.0) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
        hostkey = self.tmp / "ssh_host_ed25519_key"
        if not hostkey.exists():
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(hostkey)],
                           check=True, capture_output=True)
        self.link = self.tmp / self.pam.name
        if not self.link.is_symlink():
            self.link.symlink_to(SSHD)
        self.log = self.tmp / f"{self.pam.name}.log"
        for _attempt in range(5):
            self.port = free_port()
            config = self.tmp / f"sshd_config-{self.pam.name}"
            config.write_text("\n".join([
                "ListenAddress 127.0.0.1",
                f"Port {self.port}",
                f"HostKey {hostkey}",
                "UsePAM yes",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "AuthorizedKeysFile .ssh/authorized_keys",
                "StrictModes no",
                f"PidFile {self.tmp / (self.pam.name + '.pid')}",
                "MaxStartups 200",
                "MaxSessions 50",
                "LogLevel VERBOSE",
                "PermitRootLogin no",
                "UseDNS no",
                "PrintMotd no",
                "PrintLastLog no",
                "",
            ]))  # no Subsystem line: no sftp
            prefix = self.pam.namespace_prefix()
            if self.run_dir is not None:
                prefix = f"mount --bind {self.run_dir} /run && {prefix}"
            env = None
            if self.bus is not None:
                prefix += " && " + namespace_prefix(self.bus)
                env = {**os.environ, **self.bus.env()}
            inner = f'{prefix} && exec "$0" -D -e -f "$1"'
            with open(self.log, "ab") as log:
                self.popen = subprocess.Popen(
                    ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner,
                     str(self.link), str(config)],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                )
            self.proc = Proc.of(self.popen.pid, "sshd")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.popen.poll() is not None:
                    break
                if _banner(self.port):
                    return
                time.sleep(0.05)
            self.stop()
            if "Address already in use" not in self.log.read_text():
                break
        raise RuntimeError(f"sshd did not start; log:\n{self.log.read_text() if self.log else ''}")

    def stop(self) -> None:
        """SIGKILL sshd and every process it spawned that is still its descendant."""
        if self.proc is not None and self.popen is not None:
            if self.popen.poll() is None:
                kill_tree(self.proc)
            self.popen.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def argv(self, user: TestUser, command: str, tty: bool = False) -> list[str]:
        return ["ssh", *(["-tt"] if tty else []), "-i", str(user.key), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10",
                "-p", str(self.port), f"{user.name}@127.0.0.1", command]

    def login(self, user: TestUser, command: str) -> Login:
        login = Login(self.argv(user, command), f"ssh {user.name}")
        self.register(login)
        return login

    def run(self, user: TestUser, command: str,
            timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(user, command), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)


def private_run(tmp: Path) -> Path:
    """A directory to bind over /run for sshd: its privilege separation dir, mount points for
    the bus' tmpfs mounts (harness.bus.namespace_prefix), and an empty utmp (glibc only writes
    one that exists)."""
    run = tmp / "private-run"
    (run / "sshd").mkdir(mode=0o755, parents=True)
    for mount_point in ("systemd", "dbus"):
        (run / mount_point).mkdir(mode=0o755)
    (run / "utmp").touch(mode=0o644)
    run.chmod(0o755)
    return run
