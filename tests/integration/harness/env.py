"""One test's world: temp dir, cgroup subtree, socket path, and the ordered cleanup."""

from __future__ import annotations

import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import cgroups
from .bus import PrivateBus
from .cleanup import Cleanup, Phase
from .daemon import Daemon
from .login import Login
from .pam import PamService, install_service, remove_service
from .procs import Proc, alive, signal_proc
from .sshd import Sshd
from .su import SuRunner
from .users import TestUser, create_user, kill_user_processes, remove_user


@dataclass
class Env:
    mount: Path
    cleanup: Cleanup = field(default_factory=Cleanup)
    hexid: str = field(default_factory=lambda: secrets.token_hex(4))
    root_suffix: str = ""  # e.g. ".slice": a cgroup root libsystemd's sd-login can parse

    def __post_init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=f"logoutd-test-{self.hexid}-"))
        self.tmp.chmod(0o755)  # sshd/su run the hook from here
        self.cleanup.add(Phase.FILES, f"rm -r {self.tmp}",
                         lambda: shutil.rmtree(self.tmp, ignore_errors=True))
        self.cgroup_root = cgroups.create_test_root(self.mount, self.hexid + self.root_suffix)
        self.cleanup.add(Phase.CGROUP_KILL, f"cgroup.kill {self.cgroup_root}",
                         lambda: cgroups.kill_subtree(self.cgroup_root))
        self.cleanup.add(Phase.CGROUPS, f"rmdir {self.cgroup_root}",
                         lambda: cgroups.destroy_test_root(self.cgroup_root))
        self.socket = self.tmp / "api.sock"
        # Shared by the test's daemons, as the socket is, so PAM lines can name it before any
        # daemon exists. cgroup-root stands in for a daemon that ran before: the hook's
        # fail-safe path must find this test's subtree even if no daemon ever started, never
        # fall back to the machine's cgroup2 mount.
        self.runtime_dir = self.tmp / "run"
        self.runtime_dir.mkdir(mode=0o755)
        (self.runtime_dir / "cgroup-root").write_text(f"{self.cgroup_root}\n")
        self.daemons: list[Daemon] = []
        self.users: list[TestUser] = []
        self.logins: list[Login] = []
        self._sshds: dict[str, Sshd] = {}
        self.buses: list[PrivateBus] = []

    # -- resources --------------------------------------------------------------------------
    def user(self) -> TestUser:
        user = create_user(self.tmp)
        self.users.append(user)
        self.cleanup.add(Phase.USER_PROCESSES, f"kill uid {user.uid}",
                         lambda: kill_user_processes(user))
        self.cleanup.add(Phase.USERS, f"userdel {user.name}", lambda: remove_user(user))
        return user

    def pam(self, *, hook: bool = True, suffix: str = "", socket: Path | None = None,
            systemd: bool = False, timeout: float = 2.0,
            module: str = "pam_systemd.so", open_only: bool = False) -> PamService:
        """The test PAM service; `systemd=True`: stock pam_systemd.so instead of the hook. The hook
        talks to the daemons' root.sock in env.runtime_dir, or to `socket` if given;
        `open_only`: its line has `type=open_session` (no run at close)."""
        service = install_service(self.tmp, self.hexid, self.runtime_dir, socket, hook=hook,
                                  suffix=suffix, systemd=systemd, timeout=timeout, module=module,
                                  open_only=open_only)
        self.cleanup.add(Phase.FILES, f"rm {service.file}", lambda: remove_service(service))
        return service

    def bus(self) -> PrivateBus:
        """A private system bus (dbus-daemon) for this test, stopped after the daemons."""
        bus = PrivateBus(self.tmp, name=f"system_bus{len(self.buses) or ''}")
        self.buses.append(bus)
        self.cleanup.add(Phase.DAEMON, "stop dbus-daemon", bus.stop)
        bus.start()
        return bus

    def daemon(self, config: str | None = None, start: bool = True,
               dbus: PrivateBus | None = None, api_in_runtime_dir: bool = False) -> Daemon:
        """A logoutd for this test; `config` becomes the drop-in 50-test.conf; with `dbus` it
        also serves org.freedesktop.login1 on that bus (`logoutd --dbus`);
        `api_in_runtime_dir`: its api socket sits beside root.sock (as with default paths),
        not at env.socket."""
        base = self.tmp / f"daemon{len(self.daemons)}"
        socket = self.runtime_dir / "api.sock" if api_in_runtime_dir else self.socket
        daemon = Daemon(base, self.cgroup_root, socket, self.runtime_dir, dbus=dbus)
        self.daemons.append(daemon)
        self.cleanup.add(Phase.DAEMON, "kill logoutd", daemon.kill)
        if config is not None:
            daemon.write_dropin("50-test.conf", config)
        if start:
            daemon.start()
        return daemon

    def sshd(self, pam: PamService, bus: PrivateBus | None = None,
             run_dir: Path | None = None) -> Sshd:
        """The sshd for `pam` (one per PAM service, started on first use); with `bus`, that is
        its system bus and /run/systemd/seats exists in its mount namespace (pam_systemd);
        `run_dir` is bound over /run there (harness.sshd.private_run)."""
        if pam.name in self._sshds:
            assert self._sshds[pam.name].bus is bus, "one sshd per PAM service"
            return self._sshds[pam.name]
        sshd = Sshd(self.tmp, pam, register=self._register_login, bus=bus, run_dir=run_dir)
        self._sshds[pam.name] = sshd
        self.cleanup.add(Phase.FILES, "rm sshd symlink", sshd.remove)
        self.cleanup.add(Phase.PROCESSES, "kill sshd", sshd.stop)
        sshd.start()
        return sshd

    def su(self, pam: PamService) -> SuRunner:
        return SuRunner(pam, register=self._register_login)

    def login(self, via: str, pam: PamService, user: TestUser | str, command: str,
              bus: PrivateBus | None = None) -> Login:
        """Open a login running `command`: via "ssh", "su" (su -l) or "runuser" (runuser -l);
        `bus` (ssh only): the private system bus its PAM stack (pam_systemd) talks to."""
        if via == "ssh":
            assert isinstance(user, TestUser), "ssh needs a TestUser (root cannot log in)"
            return self.sshd(pam, bus).login(user, command)
        assert bus is None, "a private bus is wired into sshd only"
        name = user if isinstance(user, str) else user.name
        return self.su(pam).login(name, command, tool=via)

    def _register_login(self, login: Login) -> None:
        self.logins.append(login)
        self.cleanup.add(Phase.PROCESSES, f"kill {login.what}", login.kill)

    def track(self, procs: Iterable[Proc]) -> None:
        """Processes a test started: SIGKILLed by pid at teardown if they escaped everything else
        (e.g. root's processes outside the test subtree)."""
        procs = list(procs)
        self.cleanup.add(Phase.USER_PROCESSES, "kill tracked processes", lambda: _kill(procs))

    # -- cgroup views -----------------------------------------------------------------------
    def rel(self, scope: str) -> str:
        """The /proc/PID/cgroup path of a session's scope (scope is relative to cgroup root)."""
        return "/" + str((self.cgroup_root / scope).relative_to(self.mount))

    def scope_dir(self, scope: str) -> Path:
        return self.cgroup_root / scope

    def user_slice(self) -> Path:
        return self.cgroup_root / "user.slice"

    def cgroups_under_user_slice(self) -> list[Path]:
        return cgroups.subdirs(self.user_slice())

    def describe(self, *extra: Any) -> str:
        lines = [f"cgroups: {cgroups.all_procs(self.cgroup_root)}",
                 f"dirs: {[str(p) for p in cgroups.subdirs(self.cgroup_root)]}"]
        lines += [str(x) for x in extra]
        for d in self.daemons:
            lines.append(d.details())
        return "\n".join(lines)


def _kill(procs: list[Proc]) -> None:
    for p in alive(procs):
        signal_proc(p, signal.SIGKILL)
