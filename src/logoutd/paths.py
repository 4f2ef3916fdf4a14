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

    @property
    def socket_path(self) -> Path:
        return self.socket if self.socket is not None else self.runtime_dir / "api.sock"

    @property
    def root_socket_path(self) -> Path:
        """The socket for PAM and root only (mode 0600): users cannot fill it."""
        return self.runtime_dir / "root.sock"

    @property
    def linger_dir(self) -> Path:
        return self.state_dir / "linger"


DEFAULT_SOCKET = Path("/run/logoutd/api.sock")
