"""Spawning a service as its user: fork, join the unit's cgroup as root, drop privileges, exec.

The child reports a failure before exec (stage, errno) through a close-on-exec pipe, so the
caller gets "cannot enter the working directory" or "command not found" as a clear error, and
an empty read means the exec succeeded. The daemon is single-threaded, so forking is safe.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pwd
import signal
from pathlib import Path

from logoutd.core.ports import SpawnRequest
from logoutd.errors import CgroupError, InvalidArgument, LogoutdError

# Python ignores SIGPIPE and SIGXFSZ; exec keeps ignored signals ignored, so reset them.
_RESET_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                  signal.SIGCHLD, signal.SIGQUIT)


class Spawner:
    def __init__(self, cgroup_root: Path) -> None:
        self.cgroup_root = cgroup_root
        self._children: set[int] = set()

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
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child only execs or reports and exits
            os.close(read_end)
            _child(request, env, groups, procs, write_end)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            report = pipe.read()
        if not report:
            self._children.add(pid)
            return pid
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        stage, _, rest = report.decode(errors="replace").partition("\0")
        code, _, detail = rest.partition("\0")
        reason = os.strerror(int(code)) if code.isdigit() and int(code) else detail
        raise _error(stage, reason, request)

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


def _child(request: SpawnRequest, env: dict[str, str], groups: list[int], procs: Path,
           report: int) -> None:  # pragma: no cover - runs in the forked child
    stage = "setup"
    try:
        stage = "cgroup"
        with open(procs, "w") as f:  # as root, before anything of the user's runs
            f.write("0")
        stage = "setup"
        os.setsid()
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        for signo in _RESET_SIGNALS:
            signal.signal(signo, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.setgroups(groups)
        os.setresgid(request.gid, request.gid, request.gid)
        os.setresuid(request.uid, request.uid, request.uid)
        os.umask(0o022)
        stage = "log"
        log_dir = os.path.dirname(request.log_path)
        with contextlib.suppress(FileExistsError):
            os.mkdir(log_dir, 0o700)
        fd = os.open(request.log_path,
                     os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        stage = "cwd"
        os.chdir(request.cwd)
        stage = "setup"
        os.closerange(3, report)
        os.closerange(report + 1, os.sysconf("SC_OPEN_MAX"))
        stage = "exec"
        os.execvpe(request.argv[0], list(request.argv), env)
    except OSError as e:
        _report(report, stage, e.errno or errno.EIO, str(e))
    except BaseException as e:
        _report(report, stage, 0, repr(e))
    finally:
        os._exit(127)


def _report(fd: int, stage: str, code: int, detail: str) -> None:  # pragma: no cover
    with contextlib.suppress(OSError):
        os.write(fd, f"{stage}\0{code}\0{detail}".encode(errors="replace"))
