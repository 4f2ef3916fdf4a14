"""The asyncio runtime around the core: clock, watchers, signals, the socket server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from logoutd.api.connections import ROOT_LIMITS, USER_LIMITS, MemoryReturn, fitting_limits
from logoutd.api.server import ApiServer
from logoutd.api.service import DaemonInfo, Service
from logoutd.config.parse import ConfigResult, ConfigWarning, load_config
from logoutd.core.manager import Manager
from logoutd.core.ports import NoMetrics, Ports, SpawnDone
from logoutd.daemon.checkconfig import checked_warnings
from logoutd.daemon.logs import RateLimit, loop_exception_handler
from logoutd.daemon.sdlogin import (
    ObservedStore,
    SdLoginExport,
    export_wanted,
    other_login_manager,
    pid1_cgroup,
    sd_login_root_problem,
)
from logoutd.daemon.utmpwatch import UtmpWatch
from logoutd.errors import LogoutdError
from logoutd.paths import Paths
from logoutd.shell import shell_keep
from logoutd.system.accounts import UserDb, UserFiles
from logoutd.system.audit import AuditFile
from logoutd.system.cgroups import CgroupTree
from logoutd.system.inotify import IN_MOVED_TO, Inotify
from logoutd.system.memory import release_memory
from logoutd.system.procfs import ProcessTable
from logoutd.system.spawn import Spawner
from logoutd.system.statefiles import write_atomic

if TYPE_CHECKING:  # imported only with --metrics-listen (it imports prometheus_client)
    from logoutd.daemon.metrics import DaemonMetrics

log = logging.getLogger("logoutd")


class ConfigHealth(NamedTuple):
    """The last configuration load or reload, for the metrics."""

    warnings: int
    ignored: int
    loaded: bool  # every file read to its end (else the previous configuration was kept)

    @classmethod
    def of(cls, result: ConfigResult,
           warnings: Sequence[ConfigWarning] | None = None) -> ConfigHealth:
        found = result.warnings if warnings is None else warnings
        return cls(len(found), sum(w.ignored for w in found), result.fatal is None)


class LoopClock:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def now(self) -> float:
        return time.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self._loop.call_later(delay, _guarded(callback))


def _guarded(callback: Callable[[], object]) -> Callable[[], None]:
    """Run a core callback; an error is logged loudly with its traceback and the daemon goes on."""

    def run() -> None:
        try:
            callback()
        except LogoutdError as e:  # an expected failure (e.g. a full state filesystem)
            log.warning("%s failed: %s", getattr(callback, "__qualname__", callback), e.message)
        except Exception:
            log.exception("Internal error in %s", getattr(callback, "__qualname__", callback))

    return run


class GuardedProcessTable(ProcessTable):
    def watch_exit(self, ref: Any, callback: Callable[[], None]) -> None:
        super().watch_exit(ref, _guarded(callback))


class GuardedCgroupTree(CgroupTree):
    def watch_empty(self, path: str, callback: Callable[[], None]) -> None:
        super().watch_empty(path, _guarded(callback))


class GuardedSpawner(Spawner):
    def watch_start(self, pid: int, done: SpawnDone) -> None:
        super().watch_start(pid, lambda error: _guarded(lambda: done(error))())


@dataclass
class Runtime:
    paths: Paths
    config_result: ConfigResult
    dbus: bool = False
    log_limit: RateLimit | None = None
    metrics: DaemonMetrics | None = None  # --metrics-listen
    user_bus: bool = True
    audit: AuditFile = field(init=False)
    userfiles: UserFiles = field(init=False)
    config_health: ConfigHealth = field(init=False)

    def __post_init__(self) -> None:
        self.config_health = ConfigHealth.of(self.config_result)
        self.audit = AuditFile(self.config_result.config.audit_log)
        self.userfiles = UserFiles(self.paths.user_runtime_root, self.paths.linger_dir,
                                   self.config_result.config.runtime_directory_size)

    async def run(self, ready: Callable[[Manager], None] | None = None) -> int:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(loop_exception_handler)
        if self.log_limit is not None:
            self.log_limit.call_later = loop.call_later
        fd_limit = _raise_fd_limit()
        inotify = Inotify()
        loop.add_reader(inotify.fd, _guarded(inotify.dispatch))
        processes = GuardedProcessTable(loop)
        spawner = GuardedSpawner(self.paths.cgroup_root, loop)
        store = ObservedStore(self.paths.runtime_dir, self.paths.state_dir)
        ports = Ports(
            clock=LoopClock(loop),
            processes=processes,
            cgroups=GuardedCgroupTree(self.paths.cgroup_root, inotify),
            store=store,
            userdb=UserDb(),
            userfiles=self.userfiles,
            audit=self.audit,
            spawner=spawner,
            metrics=self.metrics if self.metrics is not None else NoMetrics(),
        )
        write_atomic(self.paths.cgroup_root_file, f"{self.paths.cgroup_root.resolve()}\n",
                     mode=0o644)
        self._write_shell_keep()
        manager = Manager(ports, self.config_result.config)
        # Watch before restore() reads the records: one written in between is not missed.
        inotify.add(str(self.paths.hook_dir), _guarded(manager.adopt_hook_records), IN_MOVED_TO)
        manager.restore()
        manager.start_lingering_users()
        utmp = UtmpWatch(self.paths.utmp, inotify, manager, _guarded)
        utmp.start()
        self._start_sd_login(manager, store, loop)
        info = DaemonInfo(
            reload=lambda: self.reload(manager),
            config_files=lambda: list(self.config_result.files),
            cgroup_root=str(self.paths.cgroup_root),
        )
        service = Service(manager, info)
        # Each part owns its tasks (connections, D-Bus calls, the bus watcher) and awaits them
        # when closed; the stack closes every part started, in reverse, however run() ends.
        async with contextlib.AsyncExitStack() as parts:
            parts.callback(inotify.close)
            parts.callback(utmp.close)
            parts.callback(processes.close)
            parts.callback(spawner.close)
            parts.callback(loop.remove_reader, inotify.fd)
            if self.dbus:
                login1 = await _start_login1(service, self.paths)
                parts.push_async_callback(login1.close)
                info.dbus = login1.describe
            if self.user_bus:
                userbus = await _start_user_bus(service)
                if userbus is not None:
                    parts.push_async_callback(userbus.close)
            memory = MemoryReturn(release_memory, loop.call_later)
            # Users' connections get most of the descriptors left over, root's the rest; when
            # accept() still runs out, either socket frees one by dropping an idle user
            # connection.
            api = ApiServer(service, self.paths.socket_path, memory=memory,
                            limits=fitting_limits(USER_LIMITS, fd_limit, 0.8))
            api.shed = api.shed_one
            servers = [ApiServer(service, self.paths.root_socket_path, root_only=True,
                                 memory=memory, limits=fitting_limits(ROOT_LIMITS, fd_limit, 0.2),
                                 shed=api.shed_one), api]
            for server in servers:
                await server.start()
                parts.push_async_callback(server.close)
            if self.metrics is not None:
                self.metrics.watch(manager, lambda: self.config_health)
                await self.metrics.server.start()
                parts.push_async_callback(self.metrics.server.close)
                log.info("Prometheus metrics at http://%s/metrics.", self.metrics.server.address)
            stop = asyncio.Event()
            loop.add_signal_handler(signal.SIGHUP, lambda: self.reload(manager))
            for signo in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signo, stop.set)
            if ready is not None:
                ready(manager)
            await stop.wait()
            log.info("Stopping; %d sessions stay as they are and are picked up at the next "
                     "start.", len(manager.sessions))
        return 0

    def _start_sd_login(self, manager: Manager, store: ObservedStore,
                        loop: asyncio.AbstractEventLoop) -> None:
        """sd-login's files (SdLoginFiles=), and a warning if sd-login cannot parse our paths."""
        problem = sd_login_root_problem(manager.ports.cgroups.root_in_mount, pid1_cgroup())
        if problem is not None:
            log.warning("%s", problem)
        if self.paths.sd_login_dir is None or not export_wanted(
                self.config_result.config.sd_login_files, other_login_manager):
            return
        export = SdLoginExport(self.paths.sd_login_dir, manager,
                               lambda flush: loop.call_soon(_guarded(flush)))
        try:
            export.start()
        except OSError as e:
            log.warning("Not writing sd-login's files: cannot create %s: %s", e.filename,
                        e.strerror)
            return
        store.observer = export.changed

    def reload(self, manager: Manager) -> dict[str, Any]:
        """SIGHUP / `logoutctl reload`: a reload that hits a fatal error keeps the old config.

        The answer carries every warning, AuditLog='s included, and how many lines were ignored.
        """
        result = load_config(self.paths.root)
        for warning in result.warnings:
            log.warning("%s", warning)
        if result.fatal is not None:
            log.warning("Config reload failed, keeping the previous configuration: %s",
                        result.fatal)
            self.audit.record("reload", files=list(result.files), error=str(result.fatal))
            self.config_health = ConfigHealth.of(result)
            return {"reloaded": False, "error": str(result.fatal),
                    "warnings": [str(w) for w in result.warnings],
                    "ignored": sum(w.ignored for w in result.warnings)}
        self.config_result = result
        manager.set_config(result.config)
        problem = self.audit.configure(result.config.audit_log)  # logged there
        warnings = checked_warnings(result, problem)
        self.config_health = ConfigHealth.of(result, warnings)
        self.userfiles.tmpfs_size = result.config.runtime_directory_size
        self._write_shell_keep()
        self.audit.record("reload", files=list(result.files), warnings=[str(w) for w in warnings])
        log.info("Config file reloaded.")
        return {"reloaded": True, "files": list(result.files),
                "warnings": [str(w) for w in warnings], "ignored": sum(w.ignored for w in warnings)}


    def _write_shell_keep(self) -> None:
        """KeepTmux=/KeepScreen=/KeepNohup= where the shell integration reads them without asking
        the daemon; a failure costs only that (the script then uses the defaults or the last)."""
        try:
            write_atomic(self.paths.shell_keep_file, shell_keep(self.config_result.config),
                         mode=0o644)
        except LogoutdError as e:
            log.warning("For the shell integration: %s", e.message)


async def _start_login1(service: Service, paths: Paths) -> Any:
    """org.freedesktop.login1, before the socket serves: refusing to start changes nothing."""
    try:
        from logoutd.login1.bus import Login1
    except ImportError as e:
        raise LogoutdError(f"--dbus needs the dbus-fast package ({e}): "
                           "pip install 'logoutd[dbus]'") from None
    login1 = Login1(service, paths.runtime_dir / "login1")
    await login1.start()
    return login1


async def _start_user_bus(service: Service) -> Any:
    """systemd1 at each user's $XDG_RUNTIME_DIR/systemd/private; without dbus-fast, not served."""
    try:
        from logoutd.userbus.server import UserBus
    except ImportError as e:
        log.info("Not serving systemd-run --user and systemctl --user: dbus-fast is not "
                 "installed (%s); pip install 'logoutd[dbus]'.", e)
        return None
    userbus = UserBus(service)
    await userbus.start()
    return userbus


def _raise_fd_limit() -> int:
    """One pidfd per session leader: lift the soft fd limit to the hard one; return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft if soft != resource.RLIM_INFINITY else 1 << 20
