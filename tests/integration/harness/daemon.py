"""The logoutd under test: a foreground daemon with every root in the test's temp dir."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .procs import Proc, wait_for

if TYPE_CHECKING:
    from .bus import PrivateBus

T = TypeVar("T")
LOGIN1 = "org.freedesktop.login1"

# Applied to every test daemon (a test's own drop-in, 50-test.conf, sorts after it).
BASE_DROPIN = """\
[Login]
UserStopDelaySec=0
[Logoutd]
SessionStopTimeoutSec=2s
"""


def src_dir() -> Path:
    """The directory holding the `logoutd` package the tests import (repo src/ or site-packages)."""
    import logoutd

    return Path(logoutd.__file__).resolve().parent.parent


@dataclass
class Daemon:
    base: Path  # <tmp>/daemon
    cgroup_root: Path
    socket: Path
    runtime_dir: Path  # --runtime-dir: root.sock, state, the hook's records (env.runtime_dir)
    log_path: Path = field(init=False)
    popen: subprocess.Popen[bytes] | None = None
    proc: Proc | None = None
    starts: int = 0
    dbus: PrivateBus | None = None  # with a bus: `--dbus`, DBUS_SYSTEM_BUS_ADDRESS set
    extra_args: list[str] = field(default_factory=list)  # e.g. --metrics-listen HOST:PORT
    log_target: str = "stderr"  # --log-target: the log file only sees stderr

    def __post_init__(self) -> None:
        self.root = self.base / "root"
        self.dropin_dir = self.root / "etc/systemd/logind.conf.d"
        self.state_dir = self.base / "state"
        self.user_runtime_root = self.base / "user"
        self.log_path = self.base / "logoutd.log"
        self.utmp = self.base / "utmp"  # none there; a test may point it at sshd's (`--utmp`)
        self.sd_login_dir = self.base / "systemd"  # never the machine's /run/systemd
        self.root_socket = self.runtime_dir / "root.sock"  # PAM's and root's; 0600
        for d in (self.dropin_dir, self.runtime_dir, self.state_dir, self.user_runtime_root):
            d.mkdir(parents=True, exist_ok=True)
        self.write_dropin("00-base.conf", BASE_DROPIN)

    # -- configuration --------------------------------------------------------------------
    def write_dropin(self, name: str, text: str) -> Path:
        path = self.dropin_dir / name
        path.write_text(text)
        return path

    def argv(self) -> list[str]:
        return [
            sys.executable, "-m", "logoutd",
            "--root", str(self.root),
            "--cgroup-root", str(self.cgroup_root),
            "--runtime-dir", str(self.runtime_dir),
            "--state-dir", str(self.state_dir),
            "--user-runtime-root", str(self.user_runtime_root),
            "--socket", str(self.socket),
            "--utmp", str(self.utmp),
            "--sd-login-dir", str(self.sd_login_dir),
            "--log-level", "debug",
            "--log-target", self.log_target,
            *(["--dbus"] if self.dbus is not None else []),
            *self.extra_args,
        ]

    # -- process control --------------------------------------------------------------------
    def start(self, timeout: float = 10.0, env: dict[str, str] | None = None,
              wait: bool = True) -> None:
        """Start and wait until it answers; `env` adds variables for this start only.

        With a bus, "answers" also means it owns org.freedesktop.login1 there.  `wait=False`
        only starts the process (for a start that is expected to fail).
        """
        if self.running():
            raise RuntimeError("daemon already running")
        extra = env or {}
        env = dict(os.environ)
        env.pop("LOGOUTD_CRASH_AT", None)
        env.pop("DBUS_SYSTEM_BUS_ADDRESS", None)
        if self.dbus is not None:
            env.update(self.dbus.env())
        env.update(extra)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(src_dir()), *filter(None, [env.get("PYTHONPATH")])])
        env.pop("LOGOUTD_SOCKET", None)
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"==== harness: start #{self.starts}: {' '.join(self.argv())}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=log, env=env)
        self.proc = Proc.of(self.popen.pid, "logoutd")
        if not wait:
            return

        def answers() -> bool:
            if self.popen is not None and self.popen.poll() is not None:
                raise AssertionError(
                    f"logoutd exited with {self.popen.returncode} during start-up; log:\n"
                    + self.log_tail())
            self.call("status", timeout=1.0)
            if self.dbus is not None:
                return self.dbus.name_owner_pid(LOGIN1) == self.popen.pid  # type: ignore[union-attr]
            return True

        wait_for(answers, timeout, "logoutd to answer 'status'", details=self.log_tail)

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the daemon (a crash) and reap it."""
        self._signal(signal.SIGKILL)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM (must not end any session); SIGKILL if it takes longer than `timeout`."""
        return self._signal(signal.SIGTERM, timeout)

    def _signal(self, sig: int, timeout: float = 10.0) -> int | None:
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
                raise AssertionError(f"logoutd ignored signal {sig} for {timeout:g} s") from None
        rc = self.popen.returncode
        with open(self.log_path, "ab") as log:
            log.write(f"==== harness: daemon exited with {rc} after signal {sig}\n".encode())
        return rc

    def reload(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGHUP)

    def restart(self, timeout: float = 10.0) -> None:
        self.stop()
        self.start(timeout)

    # -- API ----------------------------------------------------------------------------
    def client(self, timeout: float = 5.0) -> Any:
        from logoutd.api.client import Client

        return Client(self.socket, timeout=timeout)

    def call(self, method: str, timeout: float = 5.0, **params: Any) -> dict[str, Any]:
        with self.client(timeout) as c:
            result: dict[str, Any] = c.call(method, **params)
            return result

    def sessions(self, user: str | None = None) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.call("list_sessions")["sessions"]
        return [s for s in found if user is None or s["user"] == user]

    def session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("get_session", id=session_id)["session"]
        return result

    def users(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.call("list_users")["users"]
        return result

    def wait_for(self, predicate: Callable[[], T | None], timeout: float = 10.0,
                 what: str = "condition") -> T:
        """Poll `predicate`; on timeout the error carries the daemon log's tail."""
        return wait_for(predicate, timeout, what, details=self.details)

    def wait_session(self, user: str, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """Wait until exactly one session of `user` (matching `match`) is listed; return it."""
        def one() -> dict[str, Any] | None:
            found = [s for s in self.sessions(user)
                     if all(s.get(k) == v for k, v in match.items())]
            assert len(found) <= 1, f"more than one session of {user}: {found}"
            return found[0] if found else None
        return self.wait_for(one, timeout, f"a session of {user} {match or ''}")

    def wait_no_session(self, session_id: str, timeout: float = 10.0) -> None:
        self.wait_for(lambda: all(s["id"] != session_id for s in self.sessions()), timeout,
                      f"session {session_id} to be removed")

    # -- logs -----------------------------------------------------------------------------
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def details(self) -> str:
        try:
            sessions = self.call("list_sessions", timeout=1.0)["sessions"]
        except Exception as e:
            sessions = f"(list_sessions failed: {e!r})"
        return f"sessions: {sessions}\n---- logoutd log (tail) ----\n{self.log_tail()}"
