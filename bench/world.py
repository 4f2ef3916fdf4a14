"""One benchmark run's world: its cgroup subtree, temp dir, test users and daemons, all removed
at the end (processes first), also after a failure, Ctrl-C, SIGTERM or SIGHUP."""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from tests.integration.harness import cgroups as harness_cgroups
from tests.integration.harness.bus import config_text  # the tests' private bus: stock system policy
from tests.integration.harness.env import Env
from tests.integration.harness.procs import kill_uid, status_field
from tests.integration.harness.users import TestUser, create_user, remove_user

from bench import cgtree
from bench.procs import Children, become_subreaper
from logoutd.api.client import Client
from logoutd.errors import LogoutdError, NoSuchSession

REPO = Path(__file__).resolve().parent.parent

VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PROBE = Path(__file__).resolve().parent / "daemon_probe.py"
DBUS_DAEMON = "dbus-daemon"
BUS_POLICY_DIR = Path("/usr/share/dbus-1/system.d")  # systemd's org.freedesktop.login1.conf


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def bus_unavailable() -> str | None:
    """None if a private system bus can be started here, else why not."""
    if shutil.which(DBUS_DAEMON, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
        return "dbus-daemon is not installed"
    if not (BUS_POLICY_DIR / "org.freedesktop.login1.conf").exists():
        return f"{BUS_POLICY_DIR}/org.freedesktop.login1.conf is missing (systemd's bus policy)"
    probe = subprocess.run([daemon_python(), "-c", "import dbus_fast"], capture_output=True,
                           check=False)
    if probe.returncode != 0:
        return "dbus-fast is not installed for the daemon (logoutd --dbus needs logoutd[dbus])"
    return None


def terminate(children: Children, pid: int, timeout: float) -> None:
    """SIGTERM one of our children, SIGKILL it if it is still there after `timeout`."""
    if pid not in children.live:
        return
    children.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and children.exit_status(pid) is None:
        time.sleep(0.01)
    if pid in children.live:
        children.kill(pid, signal.SIGKILL)
        children.wait(pid)


@contextmanager
def harness_env() -> Iterator[Env]:
    """The integration tests' world (their daemon, PAM services, su and sshd) for a part that
    drives real logins; all it made is removed at the end, and any problem doing so printed."""
    mount = harness_cgroups.cgroup2_mount()
    assert mount is not None
    env = Env(mount)
    try:
        yield env
    finally:
        errors = env.cleanup.run()
        if errors:
            print("bench: cleanup problems:\n" + "\n".join(errors), file=sys.stderr)


def daemon_python() -> str:
    return str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


class PrivateBus:
    """`dbus-daemon` on a socket in the world's temp dir; the machine's system bus is never used."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.dir = world.tmp / "bus"
        self.dir.mkdir()
        self.socket = self.dir / "system_bus_socket"
        self.config = self.dir / "system.conf"
        self.log_path = self.dir / "dbus-daemon.log"
        self.config.write_text(config_text(self.socket))
        argv = [shutil.which(DBUS_DAEMON, path="/usr/sbin:/usr/bin:/sbin:/bin") or DBUS_DAEMON,
                "--nofork", f"--config-file={self.config}", "--print-pid"]
        self.pid = world.children.spawn(argv, stdout=self.log_path, stderr=self.log_path,
                                        setsid=True)
        self._wait_ready(10.0)

    @property
    def address(self) -> str:
        return f"unix:path={self.socket}"

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.world.children.exit_status(self.pid) is not None:
                raise RuntimeError(f"dbus-daemon exited at start: {self.log_text()}")
            if self.socket.exists():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    try:
                        s.connect(str(self.socket))
                        return
                    except OSError:
                        pass
            time.sleep(0.01)
        raise TimeoutError(f"dbus-daemon not ready within {timeout:g} s: {self.log_text()}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        terminate(self.world.children, self.pid, timeout)


class Daemon:
    """A foreground logoutd on the world's subtree, with its own dirs, config and log.

    With `bus`: `--dbus` and DBUS_SYSTEM_BUS_ADDRESS pointing at that private bus, so it also
    serves org.freedesktop.login1 there. With `probe`: started through bench/daemon_probe.py,
    which appends the time of each create_session and of its cgroup writes to `self.probe`.
    """

    def __init__(self, world: World, name: str, config: str, bus: PrivateBus | None = None,
                 probe: bool = False, src: Path | None = None,
                 cgroup_root: Path | None = None) -> None:
        self.world = world
        self.bus = bus
        self.dir = world.tmp / name
        self.root = self.dir / "root"
        self.socket = self.dir / "api.sock"
        self.runtime_dir = self.dir / "run"  # root.sock (the hook's), cgroup-root, hook/
        self.log_path = self.dir / "logoutd.log"
        self.probe = self.dir / "probe.txt" if probe else None
        self.dropin = self.root / "etc/systemd/logind.conf.d/50-bench.conf"
        self.dropin.parent.mkdir(parents=True)
        self.dropin.write_text(config)
        python = daemon_python()
        entry = ["-m", "logoutd"] if self.probe is None else [str(PROBE), str(self.probe)]
        self.cgroup_root = cgroup_root or world.subtree
        self.cgroup_root.mkdir(exist_ok=True)
        argv = [python, *entry, "--cgroup-root", str(self.cgroup_root),
                "--root", str(self.root), "--runtime-dir", str(self.runtime_dir),
                "--state-dir", str(self.dir / "state"), "--user-runtime-root", str(self.dir / "user"),
                "--socket", str(self.socket), "--log-target", "stderr",
                "--sd-login-dir", str(self.dir / "systemd")]  # never the machine's /run/systemd
        env = dict(world.children.env)
        # the checkout (or `src`, another one), even without an editable install
        env["PYTHONPATH"] = str(src or REPO / "src")
        if bus is not None:
            argv.append("--dbus")  # login1 claims its name before the socket serves
            env["DBUS_SYSTEM_BUS_ADDRESS"] = bus.address
        self.pid = world.children.spawn(argv, stdout=self.log_path, stderr=self.log_path, env=env,
                                        setsid=True)
        self._client: Client | None = None
        self._wait_ready(30.0)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.world.children.exit_status(self.pid) is not None:
                raise RuntimeError(f"logoutd exited at start:\n{self.log_tail()}")
            if self.socket.exists():
                try:
                    Client(self.socket, timeout=2.0).call("status")
                    return
                except LogoutdError:
                    pass
            time.sleep(0.02)
        raise TimeoutError(f"logoutd not ready within {timeout:g} s:\n{self.log_tail()}")

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.socket, timeout=60.0)
        return self._client

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        return self.client.call(method, **params)

    def wait_session_removed(self, session_id: str, timeout: float) -> None:
        """Let the daemon finish with the session, so its work does not spill into the next sample."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.call("get_session", id=session_id)
            except NoSuchSession:
                return
            time.sleep(0.005)
        raise TimeoutError(f"session {session_id} not removed within {timeout:g} s")

    def reconfigure(self, config: str) -> None:
        self.dropin.write_text(config)
        result = self.call("reload")
        if not result.get("reloaded"):
            raise RuntimeError(f"logoutd reload failed: {result}")

    def alive(self) -> bool:
        return self.world.children.exit_status(self.pid) is None

    def check_alive(self) -> None:
        if not self.alive():
            raise RuntimeError(f"logoutd died:\n{self.log_tail()}")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def probe_lines(self) -> list[str]:
        if self.probe is None:
            return []
        try:
            return self.probe.read_text().splitlines()
        except FileNotFoundError:
            return []

    def rss_kib(self) -> int:
        value = status_field(self.pid, "VmRSS")
        if value is None:
            raise RuntimeError("logoutd is gone")
        return int(value.split()[0])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (sessions stay), then SIGKILL if it does not go."""
        if self._client is not None:
            self._client.close()
            self._client = None
        terminate(self.world.children, self.pid, timeout)


class Interrupted(KeyboardInterrupt):
    pass


@dataclass
class World:
    tmp_base: Path | None = None
    subtree: Path = field(init=False)
    tmp: Path = field(init=False)
    children: Children = field(init=False)
    users: list[TestUser] = field(default_factory=list)
    daemons: list[Daemon] = field(default_factory=list)
    bus: PrivateBus | None = None
    _old_handlers: dict[int, Any] = field(default_factory=dict)

    def __enter__(self) -> World:
        mount = harness_cgroups.cgroup2_mount()
        if mount is None:
            raise RuntimeError("no cgroup2 mount in /proc/mounts")
        for signo in (signal.SIGTERM, signal.SIGHUP):
            self._old_handlers[signo] = signal.signal(signo, _interrupt)
        become_subreaper()
        self.children = Children()
        hexid = secrets.token_hex(4)
        self.subtree = mount / f"logoutd-bench-{hexid}"
        self.subtree.mkdir()
        self.tmp = Path(tempfile.mkdtemp(prefix=f"logoutd-bench-{hexid}-", dir=self.tmp_base))
        os.chmod(self.tmp, 0o755)  # like /etc/pam.d and /usr/local/bin: the PAM files and hook live here
        log(f"cgroup subtree {self.subtree}, temp dir {self.tmp}")
        return self

    def add_user(self) -> TestUser:
        """A `lgtst*` user (bash, an ssh key), made and removed as the integration tests do."""
        user = create_user(self.tmp)
        self.users.append(user)
        return user

    def start_bus(self) -> PrivateBus:
        """The world's private system bus (one per world, started on first use)."""
        if self.bus is None:
            self.bus = PrivateBus(self)
        return self.bus

    def start_daemon(self, name: str, config: str = "", *, dbus: bool = False,
                     probe: bool = False, src: Path | None = None,
                     cgroup_root: Path | None = None) -> Daemon:
        """A logoutd; `dbus`: also on the world's private bus (`--dbus`); `probe`: see Daemon;
        `src`: the `src/` of another checkout; `cgroup_root`: a cgroup below the subtree (two
        daemons in one world)."""
        daemon = Daemon(self, name, config, self.start_bus() if dbus else None, probe, src,
                        cgroup_root)
        self.daemons.append(daemon)
        return daemon

    def __exit__(self, *exc: object) -> None:
        old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        for signo in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signo, signal.SIG_IGN)
        errors: list[str] = []

        def step(what: str, func: Callable[[], object]) -> None:
            try:
                func()
            except Exception as e:
                errors.append(f"{what}: {e!r}")
                traceback.print_exc(file=sys.stderr)

        try:
            for daemon in self.daemons:
                step(f"stop logoutd {daemon.pid}", daemon.stop)
            if self.bus is not None:
                step(f"stop dbus-daemon {self.bus.pid}", self.bus.stop)
            step("cgroup.kill the subtree", lambda: _kill_subtree(self.subtree))
            step("kill our children", self._kill_children)
            for user in self.users:
                step(f"kill processes of {user.name}", functools.partial(kill_uid, user.uid))
            step("remove the cgroup subtree", lambda: cgtree.remove_tree(self.subtree))
            for user in self.users:
                step(f"userdel {user.name}", functools.partial(remove_user, user))
            step("remove the temp dir", lambda: shutil.rmtree(self.tmp))
        finally:
            signal.signal(signal.SIGINT, old_int)
            for number, handler in self._old_handlers.items():
                signal.signal(number, handler)
        if errors:
            log("cleanup incomplete:\n  " + "\n  ".join(errors))
        else:
            log("cleaned up (processes, cgroups, users, temp files)")

    def _kill_children(self) -> None:
        left = self.children.kill_all()
        if left:
            raise RuntimeError(f"children that would not die: {left}")


def _interrupt(signo: int, frame: FrameType | None) -> None:
    raise Interrupted(f"signal {signal.Signals(signo).name}")


def _kill_subtree(top: Path) -> None:
    if top.exists() and cgtree.populated(top):
        cgtree.kill(top)
        cgtree.wait_empty(top, 30.0)


