"""Spawning a service as its user: fork, join the unit's cgroup as root, drop privileges, exec,
without the daemon ever waiting on the child.

The child acts as the user on things the user controls (the log in their runtime dir, the
working directory, the executable: a FIFO, a slow or FUSE path). Before each step that can
wait it writes a stage marker to a close-on-exec pipe; on a failure it writes the stage, errno
and detail; an EOF with no failure means exec succeeded. The daemon reads that pipe from the
event loop, non-blocking. A child that has not got that far within SPAWN_DEADLINE is SIGKILLed
through its pidfd (our unreaped child: its pid cannot have been reused), reaped with WNOHANG
once its pidfd says it exited, and the error names the stage it was stuck in.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import pwd
import signal
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from logoutd.core.ports import SpawnDone, SpawnRequest
from logoutd.crashpoints import stallpoint
from logoutd.errors import CgroupError, InvalidArgument, LogoutdError

log = logging.getLogger("logoutd")

SPAWN_DEADLINE = 5.0  # seconds a child acting as the user has to reach exec, or say why not
KILL_GRACE = 1.0  # seconds a failed start's answer waits for its child to be gone and reaped
MAX_REPORT = 65536  # bytes of report read from a child (ours say far less)

# Python ignores SIGPIPE and SIGXFSZ; exec keeps ignored signals ignored, so reset them.
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                  signal.SIGCHLD, signal.SIGQUIT)


def _doing(stage: str, request: SpawnRequest) -> str:
    """What the child was doing at `stage`, for the timeout error."""
    return {
        "cgroup": f"moving into its cgroup {request.cgroup}",
        "setup": "dropping privileges",
        "log": f"opening the log {request.log_path}",
        "cwd": f"entering the working directory {request.cwd}",
        "exec": f"executing '{request.argv[0]}'",
    }.get(stage, "before its first step")


@dataclass(eq=False)
class _Start:
    """One child between fork and exec (or its failure)."""

    pid: int
    pidfd: int
    pipe: int  # the report's read end, non-blocking; -1 once closed
    request: SpawnRequest
    report: bytearray = field(default_factory=bytearray)
    error: LogoutdError | None = None
    outcome_known: bool = False
    reaped: bool = False
    done: SpawnDone | None = None
    timers: list[asyncio.TimerHandle] = field(default_factory=list)

    @property
    def stage(self) -> str:
        """The last stage the child reported."""
        stages = [r[6:] for r in bytes(self.report).decode(errors="replace").split("\n")
                  if r.startswith("stage ")]
        return stages[-1] if stages else ""


class Spawner:
    def __init__(self, cgroup_root: Path, loop: asyncio.AbstractEventLoop,
                 deadline: float = SPAWN_DEADLINE) -> None:
        self.cgroup_root = cgroup_root
        self.deadline = deadline
        self._loop = loop
        self._starts: dict[int, _Start] = {}  # children not yet exec'd, or failed and unreaped
        self._children: set[int] = set()  # exec'd: reap() collects them
        self._zombies: set[int] = set()  # killed without a pidfd (out of fds): reaped later

    def spawn(self, request: SpawnRequest) -> int:
        env = dict(request.env)
        if "SHELL" not in env:
            try:
                env["SHELL"] = pwd.getpwuid(request.uid).pw_shell or "/bin/sh"
            except KeyError:
                env["SHELL"] = "/bin/sh"
        groups = os.getgrouplist(request.user, request.gid)  # NSS in the parent, not the child
        procs = self.cgroup_root / request.cgroup / "cgroup.procs"
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            pid = os.fork()
        except OSError as e:
            os.close(read_end)
            os.close(write_end)
            raise LogoutdError(f"Cannot start {request.unit} as user {request.user}: "
                               f"{e.strerror}.") from None
        if pid == 0:  # pragma: no cover - the child only execs or reports and exits
            _child(request, env, groups, procs, write_end)
        os.close(write_end)
        os.set_blocking(read_end, False)
        try:
            pidfd = os.pidfd_open(pid)
        except OSError as e:  # out of fds: give up on it; our unreaped child, so kill by pid
            os.close(read_end)
            os.kill(pid, signal.SIGKILL)
            self._zombies.add(pid)
            raise LogoutdError(f"Cannot start {request.unit} as user {request.user}: "
                               f"{e.strerror}.") from None
        start = _Start(pid, pidfd, read_end, request)
        self._starts[pid] = start
        self._loop.add_reader(read_end, self._on_report, start)
        start.timers.append(self._loop.call_later(self.deadline, self._on_deadline, start))
        self._collect_zombies()
        return pid

    def watch_start(self, pid: int, done: SpawnDone) -> None:
        start = self._starts.get(pid)
        if start is None:
            done(LogoutdError(f"Process {pid} is not a start of this logoutd."))
            return
        start.done = done
        if start.outcome_known:
            self._deliver(start)

    def reap(self, pid: int) -> int | None:
        """Its exit code (negative: the signal that ended it), or None when unknown."""
        if pid not in self._children:
            return None
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            self._children.discard(pid)
            return None
        if not done:
            return None
        self._children.discard(pid)
        return os.waitstatus_to_exitcode(status)

    def close(self) -> None:
        """The daemon stops: stop watching (its children stay; a restart kills unconfirmed ones)."""
        for start in list(self._starts.values()):
            self._close_pipe(start)
            self._forget(start)

    # -- the report, the deadline, the exit ------------------------------------------------

    def _read(self, start: _Start) -> bool:
        """Read what the child wrote; True at EOF (it exec'd or exited)."""
        while start.pipe >= 0:
            try:
                chunk = os.read(start.pipe, 4096)
            except BlockingIOError:
                return False
            except OSError:
                return True
            if not chunk:
                return True
            if len(start.report) < MAX_REPORT:
                start.report += chunk
        return True

    def _on_report(self, start: _Start) -> None:
        if not self._read(start):
            return
        self._close_pipe(start)
        for timer in start.timers:
            timer.cancel()
        failure = _failure(bytes(start.report), start.request)
        if failure is None:
            self._children.add(start.pid)
            self._outcome(start, None)
            self._forget(start)
            return
        self._outcome_after_exit(start, failure)

    def _on_deadline(self, start: _Start) -> None:
        if start.pipe < 0:
            return
        if self._read(start):  # it got there in the same instant
            self._on_report(start)
            return
        self._close_pipe(start)
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(start.pidfd, signal.SIGKILL)
        request = start.request
        log.warning("Starting %s as user %s: no exec within %g s (stuck %s); killed it.",
                    request.unit, request.user, self.deadline, _doing(start.stage, request))
        self._outcome_after_exit(start, LogoutdError(
            f"Starting {request.unit} as user {request.user} did not finish within "
            f"{self.deadline:g} s (stuck {_doing(start.stage, request)}); it was killed."))

    def _outcome_after_exit(self, start: _Start, error: LogoutdError) -> None:
        """Answer once the failed child is reaped, so its cgroup can go; at most KILL_GRACE
        later even if it is not (unkillable for now): then it is reaped whenever it exits."""
        start.error = error
        if self._try_reap(start):
            self._outcome(start, error)
            return
        self._loop.add_reader(start.pidfd, self._on_exit, start)
        start.timers.append(self._loop.call_later(KILL_GRACE, self._outcome, start, error))

    def _on_exit(self, start: _Start) -> None:
        if self._try_reap(start):
            self._outcome(start, start.error)

    def _try_reap(self, start: _Start) -> bool:
        try:
            done, _ = os.waitpid(start.pid, os.WNOHANG)
        except ChildProcessError:
            done = start.pid
        if not done:
            return False
        start.reaped = True
        if start.outcome_known:
            self._forget(start)
        return True

    def _outcome(self, start: _Start, error: LogoutdError | None) -> None:
        if start.outcome_known:
            return
        start.outcome_known = True
        start.error = error
        for timer in start.timers:
            timer.cancel()
        if start.reaped:
            self._forget(start)
        if start.done is not None:
            self._deliver(start)

    def _deliver(self, start: _Start) -> None:
        done, start.done = start.done, None
        if done is not None:
            done(start.error)

    def _close_pipe(self, start: _Start) -> None:
        if start.pipe >= 0:
            self._loop.remove_reader(start.pipe)
            os.close(start.pipe)
            start.pipe = -1

    def _forget(self, start: _Start) -> None:
        """Done with this start: exec'd (reap() takes over) or failed and reaped."""
        for timer in start.timers:
            timer.cancel()
        if start.pidfd >= 0:
            self._loop.remove_reader(start.pidfd)
            os.close(start.pidfd)
            start.pidfd = -1
        if self._starts.get(start.pid) is start:
            del self._starts[start.pid]

    def _collect_zombies(self) -> None:
        for pid in list(self._zombies):
            with contextlib.suppress(ChildProcessError):
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue
            self._zombies.discard(pid)


def _failure(report: bytes, request: SpawnRequest) -> LogoutdError | None:
    """The error a child's report ends with, or None when it exec'd."""
    for record in report.decode(errors="replace").split("\n"):
        if record.startswith("fail "):
            stage, _, rest = record[5:].partition("\0")
            code, _, detail = rest.partition("\0")
            reason = os.strerror(int(code)) if code.isdigit() and int(code) else detail
            return _error(stage, reason, request)
    return None


def _error(stage: str, reason: str, request: SpawnRequest) -> LogoutdError:
    if stage == "cwd":
        return InvalidArgument(f"Cannot use working directory '{request.cwd}' as user "
                               f"{request.user}: {reason}.")
    if stage == "exec":
        return InvalidArgument(f"Cannot run '{request.argv[0]}' as user {request.user}: {reason}.")
    if stage == "cgroup":
        return CgroupError(f"Cannot move the new process into {request.cgroup}: {reason}.")
    if stage == "log":
        return LogoutdError(f"Cannot open the log {request.log_path} as user {request.user}: "
                            f"{reason}.")
    return LogoutdError(f"Cannot start {request.argv[0]} as user {request.user} ({stage}): "
                        f"{reason}.")


# -- the child ------------------------------------------------------------------------------


class _Refused(Exception):
    """A file the child will not use (a symlink, not a regular file): said as it is."""


def _child(request: SpawnRequest, env: dict[str, str], groups: list[int], procs: Path,
           report: int) -> None:  # pragma: no cover - runs in the forked child
    stage = "setup"
    try:
        # First: no Python signal handler (it would write to the daemon's wakeup fd), and none
        # of the daemon's fds (sockets, pidfds) kept by a child that may be stuck for a while.
        signal.set_wakeup_fd(-1)
        for signo in _RESET_SIGNALS:
            signal.signal(signo, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.closerange(3, report)
        os.closerange(report + 1, os.sysconf("SC_OPEN_MAX"))
        stage = _mark(report, "cgroup")
        with open(procs, "w") as f:  # as root, before anything of the user's runs
            f.write("0")
        stage = _mark(report, "setup")
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.setgroups(groups)
        os.setresgid(request.gid, request.gid, request.gid)
        os.setresuid(request.uid, request.uid, request.uid)
        os.umask(0o022)
        stage = _mark(report, "log")
        fd = _open_log(request.log_path)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        stage = _mark(report, "cwd")
        os.chdir(request.cwd)
        stage = _mark(report, "exec")
        os.execvpe(request.argv[0], list(request.argv), env)
    except _Refused as e:
        _report(report, stage, 0, str(e))
    except OSError as e:
        _report(report, stage, e.errno or errno.EIO, str(e))
    except BaseException as e:
        _report(report, stage, 0, repr(e))
    finally:
        os._exit(127)


def _mark(report: int, stage: str) -> str:  # pragma: no cover - runs in the forked child
    """Say which step comes next (what a timeout names), then take it."""
    os.write(report, f"stage {stage}\n".encode())
    stallpoint(f"spawn.child.{stage}")
    return stage


def _open_log(path: str) -> int:  # pragma: no cover - runs in the forked child
    """The log, as the user: its directory and itself opened without following a link, the
    file without blocking (a FIFO would), regular files only; then made blocking again."""
    log_dir, name = os.path.split(path)
    runtime_dir, dir_name = os.path.split(log_dir)
    parent = os.open(runtime_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with contextlib.suppress(FileExistsError):
            os.mkdir(dir_name, 0o700, dir_fd=parent)
        directory = _open_at(parent, dir_name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                             | os.O_CLOEXEC, f"its directory {log_dir}", stat.S_ISDIR)
    finally:
        os.close(parent)
    try:
        fd = _open_at(directory, name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
                      | os.O_NONBLOCK | os.O_CLOEXEC, "it", stat.S_ISREG)
    finally:
        os.close(directory)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Refused("it is not a regular file")
    os.set_blocking(fd, True)
    return fd


def _open_at(dir_fd: int, name: str, flags: int, what: str,
             right_type: Callable[[int], bool]) -> int:  # pragma: no cover - in the child
    try:
        return os.open(name, flags, 0o600, dir_fd=dir_fd)
    except OSError:
        try:
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except OSError:
            mode = None
        if mode is not None and stat.S_ISLNK(mode):
            raise _Refused(f"{what} is a symbolic link") from None
        if mode is not None and not right_type(mode):
            kind = "directory" if right_type is stat.S_ISDIR else "regular file"
            raise _Refused(f"{what} is not a {kind}") from None
        raise


def _report(fd: int, stage: str, code: int, detail: str) -> None:  # pragma: no cover
    with contextlib.suppress(OSError):
        detail = detail.replace("\n", " ")
        os.write(fd, f"fail {stage}\0{code}\0{detail}\n".encode(errors="replace"))
