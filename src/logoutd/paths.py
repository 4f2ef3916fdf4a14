"""Every filesystem root the daemon touches, injected so tests and instances can coexist."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path = Path("/")
    cgroup_root: Path = Path("/sys/fs/cgroup")
    runtime_dir: Path = Path("/run/logoutd")
    state_dir: Path = Path("/var/lib/logoutd")
    user_runtime_root: Path = Path("/run/user")
    socket: Path | None = None
    utmp: Path = Path("/run/utmp")  # sessions' ttys for ssh logins (core/utmpttys.py)
    # Where sd-login's sessions/ and users/ files go (the daemon's default /run/systemd);
    # None: not written (tests that build a Runtime never touch the machine's /run/systemd).
    sd_login_dir: Path | None = None

    @property
    def socket_path(self) -> Path:
        return self.socket if self.socket is not None else self.runtime_dir / "api.sock"

    @property
    def root_socket_path(self) -> Path:
        """The socket for PAM and root only (mode 0600): users cannot fill it."""
        return self.runtime_dir / "root.sock"

    @property
    def hook_dir(self) -> Path:
        """The PAM hook's records of sessions it tracked while the daemon did not answer."""
        return self.runtime_dir / "hook"

    @property
    def cgroup_root_file(self) -> Path:
        """The managed cgroup root, for the PAM hook's fail-safe path; written at each start."""
        return self.runtime_dir / "cgroup-root"

    @property
    def shell_keep_file(self) -> Path:
        """[Policy] KeepTmux=, KeepScreen=, KeepNohup= for the shell integration (world-readable);
        written at each start and reload."""
        return self.runtime_dir / SHELL_KEEP

    @property
    def linger_dir(self) -> Path:
        return self.state_dir / "linger"


SHELL_KEEP = "shell-keep"  # logoutd.sh reads RUNTIME_DIR/shell-keep
DEFAULT_RUNTIME_DIR = Path("/run/logoutd")
DEFAULT_SOCKET = DEFAULT_RUNTIME_DIR / "api.sock"
