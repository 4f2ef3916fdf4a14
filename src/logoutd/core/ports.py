"""The narrow ports through which the core reaches the system; each has an in-memory fake in tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from logoutd.errors import LogoutdError, NotAvailable


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock time, seconds since the epoch (persisted deadlines use it)."""
        ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


@dataclass(frozen=True)
class ProcessRef:
    """A process pinned by pid *and* start time, so a reused pid is never mistaken for it."""

    pid: int
    start_time: int  # clock ticks since boot, field 22 of /proc/PID/stat


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    uid: int
    comm: str
    cmdline: str
    exe: str = ""
    start_time: float = 0.0  # epoch seconds
    tty_nr: int = 0  # field 7 of /proc/PID/stat; 0: no controlling tty
    sid: int = 0  # session id (setsid)
    sig_ignored: int = 0  # SigIgn mask from /proc/PID/status
    argv: tuple[str, ...] = ()  # the words of cmdline (up to CMDLINE_MAX bytes), empty ones too


class ProcessTable(Protocol):
    def pin(self, pid: int) -> ProcessRef:
        """Pin a live process (holding a pidfd); raise ProcessGone if it is not there."""
        ...

    def repin(self, pid: int, start_time: int) -> ProcessRef | None:
        """Pin a process saved earlier, or None if it exited or its pid was reused."""
        ...

    def release(self, ref: ProcessRef) -> None:
        """Stop watching and close the pidfd."""
        ...

    def is_alive(self, ref: ProcessRef) -> bool: ...

    def signal(self, ref: ProcessRef, signo: int) -> None:
        """Send signo through the pinned pidfd; raise ProcessGone if the process has exited."""
        ...

    def watch_exit(self, ref: ProcessRef, callback: Callable[[], None]) -> None: ...

    def cgroup_of(self, pid: int) -> str:
        """The process's cgroup2 path relative to the mount, e.g. '/user.slice/…'."""
        ...

    def audit_session_id(self, pid: int) -> int | None: ...

    def describe(self, pid: int) -> ProcessInfo | None:
        """Reads /proc/PID/cmdline, which waits on the process's memory map lock: a user can
        hold that (a page fault on their own FUSE file), so not for the API's paths."""
        ...

    def brief(self, pid: int) -> ProcessInfo | None:
        """What a kill record names, from two reads (stat, cmdline): pid, ppid, comm, cmdline,
        argv, start_time, tty_nr, sid; uid is -1. None if gone. cmdline: as describe's."""
        ...

    def owner(self, pid: int) -> int | None:
        """The uid /proc/PID belongs to (as describe's), or None if it is gone; never waits."""
        ...

    def tty_idle_since(self, tty: str) -> float | None:
        """When the tty (e.g. 'pts/3') was last used (its atime), or None without one."""
        ...


class CgroupTree(Protocol):
    """The managed cgroup2 subtree; paths are relative to its root ('user.slice/…')."""

    @property
    def root_in_mount(self) -> str:
        """The managed root as seen in /proc/PID/cgroup ('/' or '/logoutd-test-ab')."""
        ...

    def create(self, path: str) -> None: ...

    def exists(self, path: str) -> bool: ...

    def move(self, path: str, pid: int) -> None: ...

    def pids(self, path: str) -> list[int]:
        """Every pid in the subtree at path."""
        ...

    def is_populated(self, path: str) -> bool: ...

    def signal(self, pids: Iterable[int], signals: Sequence[int]) -> None:
        """Send the signals to these pids only, with no re-read of the subtree."""
        ...

    def signal_all(self, path: str, signals: Sequence[int], first: Sequence[int] | None = None,
                   seen: Sequence[int] = ()) -> int:
        """Send each signal to every process in the subtree, re-reading until no new pid appears;
        `first` is the first pass's pids (just read by the caller), `seen` those `signal` sent
        to already (counted, not sent to again). Returns how many were signalled."""
        ...

    def kill(self, path: str) -> None:
        """SIGKILL the whole subtree atomically (cgroup.kill)."""
        ...

    def remove(self, path: str) -> bool:
        """Remove an empty subtree; False if it still holds processes."""
        ...

    def children(self, path: str) -> list[str]: ...

    def watch_empty(self, path: str, callback: Callable[[], None]) -> None:
        """Call back (from the event loop) whenever the subtree may have become empty."""
        ...

    def unwatch(self, path: str) -> None: ...


@dataclass(frozen=True)
class StoredRecord:
    """One record file as read, named, so that a bad one can be reported and removed."""

    key: str
    where: str  # the file, for messages
    record: dict[str, Any] | None  # None: unreadable
    error: str = ""  # why it is unreadable


class StateStore(Protocol):
    """Private, atomically written state; the API is the interface, not these files."""

    def save(self, kind: str, key: str, record: dict[str, Any]) -> None: ...

    def remove(self, kind: str, key: str) -> None: ...

    def load_all(self, kind: str) -> list[dict[str, Any]]: ...

    def load_records(self, kind: str) -> list[StoredRecord]:
        """Every record of a kind that others write (the PAM hook's), unreadable ones included."""
        ...

    def append_lines(self, kind: str, records: list[dict[str, Any]], keep: int) -> None:
        """Append records to a private log of that kind, keeping about the newest `keep`."""
        ...

    def load_lines(self, kind: str, limit: int) -> list[dict[str, Any]]: ...

    def reserve_counter(self, block: int) -> tuple[int, int]:
        """Reserve `block` ids; returns the half-open range (first, limit) persisted before use."""
        ...


@dataclass(frozen=True)
class Account:
    uid: int
    gid: int
    name: str
    home: str


class UserDb(Protocol):
    def by_uid(self, uid: int) -> Account | None: ...

    def by_name(self, name: str) -> Account | None: ...

    def group_names(self, account: Account) -> tuple[str, ...]:
        """The user's primary and supplementary group names (for [Policy] @group entries)."""
        ...


class AuditLog(Protocol):
    """The audit trail: JSON lines and syslog. `detailed`: per-process records are wanted."""

    @property
    def detailed(self) -> bool: ...

    def record(self, event: str, **fields: Any) -> None: ...


@dataclass(frozen=True)
class SpawnRequest:
    """A command to run as a user, in a unit's cgroup (relative to the managed root)."""

    argv: tuple[str, ...]
    env: dict[str, str]  # complete, except SHELL: the spawner adds the passwd entry's
    cwd: str
    uid: int
    gid: int
    user: str
    cgroup: str
    log_path: str  # stdout and stderr, appended; created by the user, 0600

    @property
    def unit(self) -> str:
        return self.cgroup.rsplit("/", 1)[-1]


# What a spawn came to: None once the child exec'd, else why it did not (it has been killed).
SpawnDone = Callable[[LogoutdError | None], None]


class Spawner(Protocol):
    def spawn(self, request: SpawnRequest) -> int:
        """Fork; in the child join the cgroup (as root), drop to the user, exec. Returns the
        child's pid at once: nothing here waits on the child, which acts as the user."""
        ...

    def watch_start(self, pid: int, done: SpawnDone) -> None:
        """Call `done` (from the event loop, or now if already known) once the child of spawn()
        exec'd (None) or failed: it reported why (e.g. InvalidArgument for a working directory
        it cannot enter), or it did not reach exec within the spawner's deadline and was
        killed. A failed child is reaped by the spawner."""
        ...

    def reap(self, pid: int) -> int | None:
        """Collect a spawned child that has exited: its exit code (negative: the signal), or
        None for a process that is not our child (e.g. after a daemon restart)."""
        ...


class NoSpawner:
    """No spawner wired (unit tests that do not need one): services cannot be started."""

    def spawn(self, request: SpawnRequest) -> int:
        raise NotAvailable("This logoutd cannot start services.")

    def watch_start(self, pid: int, done: SpawnDone) -> None:
        done(NotAvailable("This logoutd cannot start services."))

    def reap(self, pid: int) -> int | None:
        return None


class UserFiles(Protocol):
    """Per-user files outside the cgroup tree: runtime dir, linger flags, IPC objects."""

    def create_runtime_dir(self, account: Account) -> str: ...

    def remove_runtime_dir(self, uid: int) -> None: ...

    def is_lingering(self, name: str) -> bool: ...

    def lingering_names(self) -> list[str]: ...

    def set_linger(self, name: str, enable: bool) -> None:
        """Create or remove the user's linger flag (idempotent)."""
        ...

    def remove_ipc(self, uid: int) -> int:
        """Remove SysV and POSIX IPC objects owned by uid; returns how many SysV ones (POSIX
        ones may go in the background)."""
        ...


class Metrics(Protocol):
    """What the core tells the metrics (`--metrics-listen`): counters only; the live gauges are
    read from the manager at scrape time."""

    def session_new(self, origin: str) -> None:
        """A session started: "api" (create_session) or "hook" (adopted from the PAM hook)."""
        ...

    def session_stopped(self, cause: str, action: str) -> None: ...

    def processes_signalled(self, owner: str, count: int) -> None:
        """A stop round of a session, user or unit signalled count processes."""
        ...

    def stop_timed_out(self, owner: str, killed: int) -> None:
        """A stop round's deadline found `killed` processes left and killed them."""
        ...

    def leftovers_recorded(self, programs: Sequence[str]) -> None:
        """Processes left behind in permissive mode, by program name (comm)."""
        ...

    def keep_requested(self, source: str, allowed: bool) -> None:
        """A request to keep processes: "unit" (start_scope/start_unit) or "autokeep"."""
        ...

    def session_create_seconds(self, seconds: float) -> None:
        """How long a create_session that made a new session took."""
        ...


class NoMetrics:
    """No --metrics-listen: nothing is counted."""

    def session_new(self, origin: str) -> None:
        pass

    def session_stopped(self, cause: str, action: str) -> None:
        pass

    def processes_signalled(self, owner: str, count: int) -> None:
        pass

    def stop_timed_out(self, owner: str, killed: int) -> None:
        pass

    def leftovers_recorded(self, programs: Sequence[str]) -> None:
        pass

    def keep_requested(self, source: str, allowed: bool) -> None:
        pass

    def session_create_seconds(self, seconds: float) -> None:
        pass


@dataclass
class Ports:
    """Every port the core reaches the system through."""

    clock: Clock
    processes: ProcessTable
    cgroups: CgroupTree
    store: StateStore
    userdb: UserDb
    userfiles: UserFiles
    audit: AuditLog  # AuditFile: syslog always, the JSON-lines file with AuditLog=
    spawner: Spawner = field(default_factory=NoSpawner)
    metrics: Metrics = field(default_factory=NoMetrics)
