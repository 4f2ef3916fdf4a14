"""In-memory fakes of the core's ports, for unit tests of the pure core (no root, no kernel)."""

from __future__ import annotations

import heapq
import itertools
import signal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from logoutd.core.ports import (
    Account,
    ProcessInfo,
    ProcessRef,
    SpawnDone,
    SpawnRequest,
    StoredRecord,
)
from logoutd.errors import LogoutdError, ProcessGone


@dataclass
class FakeTimer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    def __init__(self, start: float = 1_000_000.0) -> None:
        self.time = start
        self._queue: list[tuple[float, int, FakeTimer]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self.time

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self.time + delay, callback)
        heapq.heappush(self._queue, (timer.when, next(self._seq), timer))
        return timer

    def advance(self, seconds: float) -> None:
        end = self.time + seconds
        while self._queue and self._queue[0][0] <= end:
            when, _, timer = heapq.heappop(self._queue)
            self.time = max(self.time, when)
            if not timer.cancelled:
                timer.callback()
        self.time = end

    def pending(self) -> int:
        return sum(1 for _, _, t in self._queue if not t.cancelled)


@dataclass
class FakeProcess:
    pid: int
    uid: int = 1000
    cgroup: str = "/"
    start_time: int = 1
    ignores: set[int] = field(default_factory=set)
    alive: bool = True
    received: list[int] = field(default_factory=list)
    sessionid: int | None = None
    ppid: int = 1
    sid: int = 0  # 0: its own session (as after setsid)
    tty_nr: int = 0


class World:
    """Processes and a cgroup tree that agree with each other; signals really 'kill'."""

    def __init__(self, root_in_mount: str = "/") -> None:
        self.procs: dict[int, FakeProcess] = {}
        self.root_in_mount = root_in_mount
        self.dirs: set[str] = set()
        self._next_pid = 100
        self.exit_watchers: dict[int, Callable[[], None]] = {}
        self.empty_watchers: dict[str, Callable[[], None]] = {}

    def spawn(self, uid: int = 1000, cgroup: str | None = None, ignores: Sequence[int] = (),
              sessionid: int | None = None) -> FakeProcess:
        self._next_pid += 1
        proc = FakeProcess(self._next_pid, uid, cgroup or self.root_in_mount, ignores=set(ignores),
                           sessionid=sessionid)
        self.procs[proc.pid] = proc
        return proc

    def abs(self, path: str) -> str:
        return self.root_in_mount.rstrip("/") + "/" + path

    def exit(self, pid: int, notify: bool = True) -> None:
        proc = self.procs[pid]
        if not proc.alive:
            return
        proc.alive = False
        old = proc.cgroup
        if notify:
            callback = self.exit_watchers.pop(pid, None)
            if callback:
                callback()
            for path, cb in list(self.empty_watchers.items()):
                if old == self.abs(path) or old.startswith(self.abs(path) + "/"):
                    cb()

    def members(self, path: str) -> list[FakeProcess]:
        prefix = self.abs(path)
        return [p for p in self.procs.values()
                if p.alive and (p.cgroup == prefix or p.cgroup.startswith(prefix + "/"))]


class FakeProcesses:
    def __init__(self, world: World) -> None:
        self.world = world
        self.pinned: set[ProcessRef] = set()

    def pin(self, pid: int) -> ProcessRef:
        proc = self.world.procs.get(pid)
        if proc is None or not proc.alive:
            raise ProcessGone(f"Process {pid} does not exist.")
        ref = ProcessRef(pid, proc.start_time)
        self.pinned.add(ref)
        return ref

    def repin(self, pid: int, start_time: int) -> ProcessRef | None:
        proc = self.world.procs.get(pid)
        if proc is None or not proc.alive or proc.start_time != start_time:
            return None
        return self.pin(pid)

    def release(self, ref: ProcessRef) -> None:
        self.pinned.discard(ref)
        self.world.exit_watchers.pop(ref.pid, None)

    def is_alive(self, ref: ProcessRef) -> bool:
        proc = self.world.procs.get(ref.pid)
        return proc is not None and proc.alive and proc.start_time == ref.start_time

    def signal(self, ref: ProcessRef, signo: int) -> None:
        if not self.is_alive(ref):
            raise ProcessGone(f"Process {ref.pid} has exited.")
        proc = self.world.procs[ref.pid]
        proc.received.append(signo)
        if signo in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL) and (
                signo not in proc.ignores or signo == signal.SIGKILL):
            self.world.exit(proc.pid)

    def watch_exit(self, ref: ProcessRef, callback: Callable[[], None]) -> None:
        self.world.exit_watchers[ref.pid] = callback

    def cgroup_of(self, pid: int) -> str:
        proc = self.world.procs.get(pid)
        if proc is None or not proc.alive:
            raise ProcessGone(f"Process {pid} has exited.")
        return proc.cgroup

    def audit_session_id(self, pid: int) -> int | None:
        proc = self.world.procs.get(pid)
        return proc.sessionid if proc else None

    def owner(self, pid: int) -> int | None:
        proc = self.world.procs.get(pid)
        return proc.uid if proc is not None and proc.alive else None

    def describe(self, pid: int) -> ProcessInfo | None:
        proc = self.world.procs.get(pid)
        if proc is None or not proc.alive:
            return None
        ignored = 0
        for signo in proc.ignores:
            ignored |= 1 << (signo - 1)
        return ProcessInfo(pid, proc.ppid, proc.uid, "sleep", "sleep 1000", exe="/usr/bin/sleep",
                           start_time=1_000.0, tty_nr=proc.tty_nr, sid=proc.sid or proc.pid,
                           sig_ignored=ignored)

    def brief(self, pid: int) -> ProcessInfo | None:
        return self.describe(pid)

    def tty_idle_since(self, tty: str) -> float | None:
        return self.tty_atimes.get(tty) if hasattr(self, "tty_atimes") else None


class FakeCgroups:
    def __init__(self, world: World) -> None:
        self.world = world
        self.signals: list[tuple[int, int]] = []
        self.kills: list[str] = []
        self.remove_calls: list[str] = []
        self.moves: list[tuple[str, int]] = []

    @property
    def root_in_mount(self) -> str:
        return self.world.root_in_mount

    def create(self, path: str) -> None:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            self.world.dirs.add("/".join(parts[:i]))

    def exists(self, path: str) -> bool:
        return path in self.world.dirs

    def move(self, path: str, pid: int) -> None:
        proc = self.world.procs.get(pid)
        if proc is None or not proc.alive:
            raise ProcessGone(f"Process {pid} has exited.")
        self.moves.append((path, pid))
        proc.cgroup = self.world.abs(path)

    def pids(self, path: str) -> list[int]:
        return [p.pid for p in self.world.members(path)]

    def is_populated(self, path: str) -> bool:
        return bool(self.world.members(path))

    def signal(self, pids: Iterable[int], signals: Sequence[int]) -> None:
        for pid in pids:
            proc = self.world.procs.get(pid)
            if proc is not None and proc.alive:
                self._send(proc, signals)

    def signal_all(self, path: str, signals: Sequence[int], first: Sequence[int] | None = None,
                   seen: Sequence[int] = ()) -> int:
        members = [p for p in self.world.members(path) if p.pid not in seen]
        for proc in members:
            self._send(proc, signals)
        self._notify(path)
        return len(members) + len(set(seen))

    def _send(self, proc: Any, signals: Sequence[int]) -> None:
        for signo in signals:
            self.signals.append((proc.pid, signo))
            proc.received.append(signo)
            if signo in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT) and signo not in proc.ignores:
                self.world.exit(proc.pid, notify=False)
                return

    def kill(self, path: str) -> None:
        self.kills.append(path)
        for proc in self.world.members(path):
            self.world.exit(proc.pid, notify=False)
        self._notify(path)

    def _notify(self, path: str) -> None:
        """Deliver exits the way the runtime would: later, from the event loop (here: now)."""
        for pid, callback in list(self.world.exit_watchers.items()):
            if not self.world.procs[pid].alive:
                del self.world.exit_watchers[pid]
                callback()
        for watched, callback in list(self.world.empty_watchers.items()):
            if not self.world.members(watched):
                callback()

    def remove(self, path: str) -> bool:
        self.remove_calls.append(path)
        if self.world.members(path):
            return False
        self.world.dirs = {d for d in self.world.dirs if d != path and not d.startswith(path + "/")}
        return True

    def children(self, path: str) -> list[str]:
        depth = path.count("/") + 1
        return sorted(d.split("/")[-1] for d in self.world.dirs
                      if d.startswith(path + "/") and d.count("/") == depth)

    def watch_empty(self, path: str, callback: Callable[[], None]) -> None:
        self.world.empty_watchers[path] = callback

    def unwatch(self, path: str) -> None:
        self.world.empty_watchers.pop(path, None)


class FakeStore:
    def __init__(self) -> None:
        self.data: dict[tuple[str, str], dict[str, Any]] = {}
        self.lines: dict[str, list[dict[str, Any]]] = {}
        self.counter = 1
        self.writes: list[tuple[str, str]] = []  # every save, in order (each is a file write)
        self.full = False  # a full state filesystem: save and append_lines raise, as the real one
        self.failed: list[tuple[str, str]] = []  # saves refused while full
        self.unreadable: dict[tuple[str, str], str] = {}  # files that are not JSON objects: why

    def save(self, kind: str, key: str, record: dict[str, Any]) -> None:
        if self.full:
            self.failed.append((kind, key))
            raise LogoutdError(f"Cannot save state file /run/logoutd/{kind}/{key}.json: "
                               "No space left on device.")
        self.data[(kind, key)] = dict(record)
        self.writes.append((kind, key))

    def remove(self, kind: str, key: str) -> None:
        self.data.pop((kind, key), None)
        self.unreadable.pop((kind, key), None)

    def load_all(self, kind: str) -> list[dict[str, Any]]:
        return [dict(v) for (k, _), v in sorted(self.data.items()) if k == kind]

    def load_records(self, kind: str) -> list[StoredRecord]:
        found = [StoredRecord(key, f"{kind}/{key}.json", dict(v))
                 for (k, key), v in self.data.items() if k == kind]
        found += [StoredRecord(key, f"{kind}/{key}.json", None, why)
                  for (k, key), why in self.unreadable.items() if k == kind]
        return sorted(found, key=lambda r: r.key)

    def append_lines(self, kind: str, records: list[dict[str, Any]], keep: int) -> None:
        if self.full:
            raise LogoutdError(f"Cannot append to state file /run/logoutd/{kind}.jsonl: "
                               "No space left on device.")
        self.lines.setdefault(kind, []).extend(dict(r) for r in records)
        del self.lines[kind][:-keep]

    def load_lines(self, kind: str, limit: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self.lines.get(kind, [])[-limit:]]

    def reserve_counter(self, block: int) -> tuple[int, int]:
        first = self.counter
        self.counter += block
        return first, first + block


class FakeUserDb:
    def __init__(self, accounts: Sequence[Account] = ()) -> None:
        self.accounts = {a.uid: a for a in accounts}
        self.groups: dict[str, tuple[str, ...]] = {}

    def by_uid(self, uid: int) -> Account | None:
        return self.accounts.get(uid)

    def by_name(self, name: str) -> Account | None:
        return next((a for a in self.accounts.values() if a.name == name), None)

    def group_names(self, account: Account) -> tuple[str, ...]:
        return self.groups.get(account.name, (account.name,))


class FakeAudit:
    def __init__(self, detailed: bool = True) -> None:
        self.detailed = detailed
        self.records: list[tuple[str, dict[str, Any]]] = []

    def record(self, event: str, **fields: Any) -> None:
        self.records.append((event, fields))

    def events(self, event: str) -> list[dict[str, Any]]:
        return [f for e, f in self.records if e == event]


class FakeUserFiles:
    def __init__(self) -> None:
        self.runtime_dirs: set[int] = set()
        self.linger: set[str] = set()
        self.ipc_removed: list[int] = []

    def create_runtime_dir(self, account: Account) -> str:
        self.runtime_dirs.add(account.uid)
        return f"/run/user/{account.uid}"

    def remove_runtime_dir(self, uid: int) -> None:
        self.runtime_dirs.discard(uid)

    def is_lingering(self, name: str) -> bool:
        return name in self.linger

    def lingering_names(self) -> list[str]:
        return sorted(self.linger)

    def set_linger(self, name: str, enable: bool) -> None:
        if enable:
            self.linger.add(name)
        else:
            self.linger.discard(name)

    def remove_ipc(self, uid: int) -> int:
        self.ipc_removed.append(uid)
        return 0


class FakeSpawner:
    """Spawns a FakeProcess of the requested uid straight into the unit's cgroup. The child's
    report comes at once (exec'd, or `fail`); with `hold`, when the test calls report()."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.requests: list[SpawnRequest] = []
        self.reaped: list[int] = []
        self.exit_codes: dict[int, int] = {}  # pid -> what reap() reports
        self.refuse: Exception | None = None  # raised by spawn() itself (e.g. fork failed)
        self.fail: LogoutdError | None = None  # what the child reports (it exits)
        self.hold = False
        self.pending: dict[int, SpawnDone] = {}

    def spawn(self, request: SpawnRequest) -> int:
        if self.refuse is not None:
            raise self.refuse
        self.requests.append(request)
        return self.world.spawn(uid=request.uid, cgroup=self.world.abs(request.cgroup)).pid

    def watch_start(self, pid: int, done: SpawnDone) -> None:
        self.pending[pid] = done
        if not self.hold:
            self.report(pid, self.fail)

    def report(self, pid: int, error: LogoutdError | None = None, *, exited: bool = True) -> None:
        """The child exec'd (None) or failed; a failed child has exited and been reaped unless
        `exited` is False (killed, but not gone yet)."""
        done = self.pending.pop(pid)
        if error is not None and exited:
            self.world.exit(pid, notify=False)
        done(error)

    def reap(self, pid: int) -> int | None:
        self.reaped.append(pid)
        return self.exit_codes.get(pid)


class FakeMetrics:
    """Records what the core tells the metrics, as (event, args) pairs."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def of(self, event: str) -> list[tuple[Any, ...]]:
        return [args for e, args in self.calls if e == event]

    def session_new(self, origin: str) -> None:
        self.calls.append(("session_new", (origin,)))

    def session_stopped(self, cause: str, action: str) -> None:
        self.calls.append(("session_stopped", (cause, action)))

    def processes_signalled(self, owner: str, count: int) -> None:
        self.calls.append(("processes_signalled", (owner, count)))

    def stop_timed_out(self, owner: str, killed: int) -> None:
        self.calls.append(("stop_timed_out", (owner, killed)))

    def leftovers_recorded(self, programs: Sequence[str]) -> None:
        self.calls.append(("leftovers_recorded", tuple(programs)))

    def keep_requested(self, source: str, allowed: bool) -> None:
        self.calls.append(("keep_requested", (source, allowed)))

    def session_create_seconds(self, seconds: float) -> None:
        self.calls.append(("session_create_seconds", (seconds,)))
