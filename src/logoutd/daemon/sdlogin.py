"""sd-login's view of logoutd: /run/systemd/{sessions,users}/ files in logind 252's format.

libsystemd's sd-login (and libelogind's) answer "which session is this, is it active, who is
logged in?" from these files; logind writes them in session_save()/user_save(). logoutd
writes the same keys, spelled the same, whenever a session or user is saved or removed. They
are an export: logoutd's own state stays in its runtime dir, and is the truth on a restart.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from logoutd.config.model import SdLoginFiles
from logoutd.core.manager import Manager
from logoutd.core.sessions import Session, SessionState, is_remote_host
from logoutd.core.users import User
from logoutd.errors import LogoutdError
from logoutd.system.statefiles import StateStore, write_atomic

log = logging.getLogger("logoutd")

HEADER = "# This is private data. Do not parse.\n"
# The processes of the login managers whose files these are (comm, at most 15 characters).
LOGIN_MANAGERS = ("systemd-logind", "elogind-daemon", "elogind")
_SPECIAL = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"', "'": "\\'"}


def cescape(text: str) -> str:
    """systemd's cescape(): C escapes, and octal for other control and non-ASCII bytes."""
    out = []
    for byte in text.encode("utf-8", "surrogateescape"):
        char = chr(byte)
        if char in _SPECIAL:
            out.append(_SPECIAL[char])
        elif byte < 0x20 or byte >= 0x7F:
            out.append(f"\\{byte:03o}")
        else:
            out.append(char)
    return "".join(out)


def _usec(seconds: float) -> int:
    return int(seconds * 1_000_000)


def _timestamps(wall: float, boot: float) -> str:
    """REALTIME and MONOTONIC of a wall-clock time (logoutd keeps only the former); `boot`:
    the wall-clock time of CLOCK_MONOTONIC's zero."""
    monotonic = max(0.0, wall - boot)
    return f"REALTIME={_usec(wall)}\nMONOTONIC={_usec(monotonic)}\n"


def boot_time() -> float:
    """The wall-clock time at which CLOCK_MONOTONIC was 0."""
    return time.time() - time.monotonic()


def render_session(session: Session, boot: float) -> str:
    """session_save()'s file; seat-less sessions are active, as logind's session_is_active()."""
    lines = [
        HEADER,
        f"UID={session.user.uid}\n",
        f"USER={session.user.name}\n",
        "ACTIVE=1\n",
        "IS_DISPLAY=0\n",
        f"STATE={session.state}\n",
        f"REMOTE={int(is_remote_host(session.remote_host))}\n",
        f"TYPE={session.type}\n",
        f"ORIGINAL_TYPE={session.type}\n",
        f"CLASS={session.class_}\n",
        f"SCOPE={session.scope.rsplit('/', 1)[-1]}\n",
    ]
    if session.tty:
        validity = "from-utmp" if session.tty_from == "utmp" else "from-pam"
        lines.append(f"TTY={session.tty}\nTTY_VALIDITY={validity}\n")
    elif session.tty_from == "utmp-inconsistent":
        lines.append("TTY_VALIDITY=utmp-inconsistent\n")
    for key, value in (("REMOTE_HOST", session.remote_host), ("REMOTE_USER", session.remote_user),
                       ("SERVICE", session.service)):
        if value:
            lines.append(f"{key}={cescape(value)}\n")
    lines.append("POSITION=0\n")  # logind's for every session without a VT
    if session.leader_pid > 0:
        lines.append(f"LEADER={session.leader_pid}\n")
    if session.id.isdigit():  # logoutd takes the audit session id when there is one
        lines.append(f"AUDIT={session.id}\n")
    if session.timestamp:
        lines.append(_timestamps(session.timestamp, boot))
    return "".join(lines)


def render_user(user: User, boot: float) -> str:
    """user_save()'s file; sessions newest first, as logind's list; no seats."""
    lines = [HEADER, f"NAME={user.name}\n", f"STATE={user.state}\n",
             f"STOPPING={'yes' if user.stopping else 'no'}\n"]
    if user.runtime_path:
        lines.append(f"RUNTIME={user.runtime_path}\n")
    if user.timestamp:
        lines.append(_timestamps(user.timestamp, boot))
    if user.sessions:
        sessions = list(reversed(user.sessions.values()))
        active = [s.id for s in sessions if s.state is SessionState.ACTIVE]
        online = [s.id for s in sessions if s.state is not SessionState.CLOSING]
        lines.append(f"SESSIONS={' '.join(s.id for s in sessions)}\nSEATS=\n"
                     f"ACTIVE_SESSIONS={' '.join(active)}\nONLINE_SESSIONS={' '.join(online)}\n"
                     "ACTIVE_SEATS=\nONLINE_SEATS=\n")
    return "".join(lines)


def other_login_manager(proc: Path = Path("/proc"),
                        booted: Path = Path("/run/systemd/system")) -> str | None:
    """'systemd-logind (pid N)' if logind or elogind runs on this machine, or systemd is PID 1
    (D-Bus starts its logind on demand), else None."""
    if booted.is_dir():
        return f"systemd ({booted} exists)"
    ours = _pid_namespace(proc / "self")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue  # exited meanwhile, or not ours to read
        # One in a container's own pid namespace manages the container, not this machine.
        if comm in LOGIN_MANAGERS and _pid_namespace(entry) == ours:
            return f"{comm} (pid {entry.name})"
    return None


def _pid_namespace(process: Path) -> str | None:
    try:
        return os.readlink(process / "ns" / "pid")
    except OSError:
        return None


def export_wanted(setting: SdLoginFiles, other: Callable[[], str | None]) -> bool:
    """SdLoginFiles=: yes always, no never, auto unless another login manager runs (said once)."""
    if setting is SdLoginFiles.NO:
        log.info("SdLoginFiles=no: not writing sd-login's session and user files.")
        return False
    running = other()
    if setting is SdLoginFiles.YES:
        if running is not None:
            log.warning("SdLoginFiles=yes although %s runs: its files get overwritten.", running)
        return True
    if running is not None:
        log.info("%s runs: it is this machine's login manager, so logoutd does not write "
                 "sd-login's files (SdLoginFiles=auto).", running)
        return False
    return True


class Observing:
    """Mixed into a state store: tells `observer` (kind, key) after each save and remove."""

    observer: Callable[[str, str], None] | None = None

    def save(self, kind: str, key: str, record: dict[str, Any]) -> None:
        super().save(kind, key, record)  # type: ignore[misc]
        if self.observer is not None:
            self.observer(kind, key)

    def remove(self, kind: str, key: str) -> None:
        super().remove(kind, key)  # type: ignore[misc]
        if self.observer is not None:
            self.observer(kind, key)


class ObservedStore(Observing, StateStore):
    """The daemon's state store, observed by the sd-login export."""


class SdLoginExport:
    """Keeps DIR/sessions/ID and DIR/users/UID in step with the manager.

    Every change of a session or user the core makes is saved; each save marks the object, and
    one flush per loop iteration (`schedule`) rewrites what changed and removes what is gone.
    Writes go to tmpfs and never wait on a user.
    """

    def __init__(self, root: Path, manager: Manager,
                 schedule: Callable[[Callable[[], None]], object]) -> None:
        self.root = root
        self.manager = manager
        self._schedule = schedule
        self._sessions: dict[str, tuple[int, str]] = {}  # id -> (uid, text written)
        self._users: dict[int, str] = {}
        self._dirty_sessions: set[str] = set()
        self._dirty_users: set[int] = set()
        self._scheduled = False
        self._failed = False
        self._boot = boot_time()

    @property
    def sessions_dir(self) -> Path:
        return self.root / "sessions"

    @property
    def users_dir(self) -> Path:
        return self.root / "users"

    def start(self) -> None:
        """Reconcile after a (re)start: remove files of sessions and users gone, write the rest."""
        for directory in (self.sessions_dir, self.users_dir):
            directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        stale = [name for name in _names(self.sessions_dir) if name not in self.manager.sessions]
        stale_uids = [name for name in _names(self.users_dir)
                      if not name.isdigit() or int(name) not in self.manager.users]
        for name in stale:
            _unlink(self.sessions_dir / name)
        for name in stale_uids:
            _unlink(self.users_dir / name)
        if stale or stale_uids:
            log.info("sd-login files: removed %d stale session and %d stale user files.",
                     len(stale), len(stale_uids))
        self._dirty_sessions.update(self.manager.sessions)
        self._dirty_users.update(self.manager.users)
        self.flush()
        log.info("Writing sd-login's session and user files under %s.", self.root)

    def changed(self, kind: str, key: str) -> None:
        """A session or user was saved or removed (the store's observer)."""
        if kind == "sessions":
            self._dirty_sessions.add(key)
        elif kind == "users" and key.isdigit():
            self._dirty_users.add(int(key))
        else:
            return
        if not self._scheduled:
            self._scheduled = True
            self._schedule(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        sessions, self._dirty_sessions = self._dirty_sessions, set()
        for sid in sessions:
            self._flush_session(sid)
        users, self._dirty_users = self._dirty_users, set()
        for uid in users:
            self._flush_user(uid)

    def _flush_session(self, sid: str) -> None:
        session = self.manager.sessions.get(sid)
        old = self._sessions.get(sid)
        if old is not None:
            self._dirty_users.add(old[0])
        if session is None or session.finalized or not session.started:
            if old is not None or session is None:
                self._sessions.pop(sid, None)
                _unlink(self.sessions_dir / sid)
            return
        self._dirty_users.add(session.user.uid)
        text = render_session(session, self._boot)
        if (old is None or old[1] != text) and self._write(self.sessions_dir / sid, text):
            self._sessions[sid] = (session.user.uid, text)

    def _flush_user(self, uid: int) -> None:
        user = self.manager.users.get(uid)
        if user is None or user.finalized or not user.started:
            self._users.pop(uid, None)
            _unlink(self.users_dir / str(uid))
            return
        text = render_user(user, self._boot)
        if self._users.get(uid) != text and self._write(self.users_dir / str(uid), text):
            self._users[uid] = text

    def _write(self, path: Path, text: str) -> bool:
        try:
            write_atomic(path, text, mode=0o644)
        except LogoutdError as e:
            if not self._failed:  # once: a full /run would otherwise log at every change
                log.warning("sd-login files: %s", e.message)
            self._failed = True
            return False
        self._failed = False
        return True


def _names(directory: Path) -> list[str]:
    try:
        return [name for name in os.listdir(directory) if not name.startswith(".")]
    except FileNotFoundError:
        return []


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warning("sd-login files: cannot remove %s: %s", path, e.strerror)


# --- which cgroup paths sd-login parses ------------------------------------------------------

_UNIT_CHARS = re.compile(r"[A-Za-z0-9:_.\\-]+")


def valid_slice_name(name: str) -> bool:
    """libsystemd's valid_slice_name(): a plain unit name ending in .slice (cg_unescape'd)."""
    name = name[1:] if name.startswith("_") else name  # cg_unescape()
    return (len(name) >= len("x.slice") and len(name) <= 255 and name.endswith(".slice")
            and _UNIT_CHARS.fullmatch(name) is not None and "@" not in name)


def pid1_root(pid1_cgroup: str) -> str:
    """cg_get_root_path(): PID 1's cgroup without /init.scope (or the legacy /system.slice)."""
    for suffix in ("/init.scope", "/system.slice", "/system"):
        if pid1_cgroup.endswith(suffix):
            return pid1_cgroup[: -len(suffix)] or "/"
    return pid1_cgroup


def sd_login_root_problem(root_in_mount: str, pid1_cgroup: str) -> str | None:
    """Why libsystemd's sd_pid_get_session() cannot parse sessions under the managed root, or None.

    It shifts /proc/PID/cgroup by PID 1's root, skips leading `*.slice` components and wants
    the session scope next: every component of the managed root must be a slice.
    """
    root = pid1_root(pid1_cgroup).rstrip("/")
    path = root_in_mount
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):]
    for component in filter(None, path.split("/")):
        if not valid_slice_name(component):
            return (f"libsystemd's sd-login cannot parse sessions under the cgroup root "
                    f"{root_in_mount}: its component '{component}' is not a *.slice name, so "
                    "sd_pid_get_session() and friends fail for processes in logoutd's sessions "
                    "(use the cgroup2 mount or a root named NAME.slice; see docs/install.md).")
    return None


def pid1_cgroup(proc: Path = Path("/proc")) -> str:
    """PID 1's cgroup2 path ('0::' line), '/' if unreadable."""
    try:
        for line in (proc / "1/cgroup").read_text().splitlines():
            if line.startswith("0::"):
                return line[3:] or "/"
    except OSError:
        pass
    return "/"
