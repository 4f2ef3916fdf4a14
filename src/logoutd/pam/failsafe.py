"""The PAM hook's fail-safe path (DESIGN §10): the daemon did not answer a session open, so the
hook tracks the login itself, for the daemon to adopt when it answers again.

Standard library only, like the hook. The hook compiles this file only on this path (a script
is compiled at every start, so code kept here costs no normal login anything); it is
installed beside the hook as <hook>-failsafe.py.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing itself costs an import
if TYPE_CHECKING:
    from collections.abc import Callable

PROC = "/proc"
MOUNTS = "/proc/mounts"
SYSTEMD = "/run/systemd/system"  # exists when systemd is PID 1 (sd_booted)


def _object(fields: dict[str, str | int | float], quote: Callable[[str], str]) -> str:
    """A JSON object of strings and numbers (quote: the hook's JSON string literal; json is not
    imported here either)."""
    return "{" + ", ".join(
        f"{quote(k)}: {quote(v) if isinstance(v, str) else repr(v)}" for k, v in fields.items()
    ) + "}"


def _cgroup2_mounts() -> list[str]:
    mounts = []
    with open(MOUNTS) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "cgroup2":
                mounts.append(fields[1].replace("\\040", " "))
    return mounts


def _managed_root(runtime_dir: str) -> tuple[str, str]:
    """(the managed cgroup root, that root as /proc/PID/cgroup shows it): from DIR/cgroup-root,
    which the daemon writes at start, else the cgroup2 mount itself (as the daemon's default)."""
    try:
        with open(f"{runtime_dir}/cgroup-root") as f:
            root = f.read().strip().rstrip("/")
    except FileNotFoundError:
        root = ""
    mounts = _cgroup2_mounts()
    if not root:
        if os.path.isdir(SYSTEMD):  # the daemon then runs in a delegated subtree, never the top
            raise OSError(f"{runtime_dir}/cgroup-root is missing and systemd owns the cgroup tree")
        if not mounts:
            raise OSError("no cgroup2 filesystem in /proc/mounts")
        root = mounts[0].rstrip("/")
    inside = [m.rstrip("/") for m in mounts
              if root == m.rstrip("/") or root.startswith(m.rstrip("/") + "/")]
    mount = max(inside, key=len) if inside else root
    return root, root[len(mount):] or "/"


def _proc_fields(leader: int) -> tuple[str, int]:
    """The leader's cgroup2 path and start time (clock ticks since boot, field 22 of stat)."""
    with open(f"{PROC}/{leader}/cgroup") as f:
        cgroup = next((line[3:].strip() for line in f if line.startswith("0::")), "")
    with open(f"{PROC}/{leader}/stat", "rb") as f:
        stat = f.read()
    return cgroup, int(stat[stat.rindex(b")") + 2:].split()[19])


def _audit_session(leader: int) -> str:
    try:
        with open(f"{PROC}/{leader}/sessionid") as f:
            value = f.read().strip()
    except OSError:
        return ""
    return value if value.isdigit() and value not in ("0", "4294967295") else ""


def _claim(root: str, slice_dir: str, leader: int, start: int) -> str:
    """Make the scope; mkdir is the claim. The daemon's ids are audit ids and c<N>; ours are the
    audit id when no slice has that session, else h<pid>, else h<pid>t<start time>."""
    audit = _audit_session(leader)
    if audit:
        try:
            slices = os.listdir(f"{root}/user.slice")
        except FileNotFoundError:
            slices = []
        if any(os.path.isdir(f"{root}/user.slice/{s}/session-{audit}.scope") for s in slices):
            audit = ""
    for candidate in (audit, f"h{leader}", f"h{leader}t{start}"):
        if not candidate:
            continue
        try:
            os.mkdir(f"{slice_dir}/session-{candidate}.scope")
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"every session id for leader {leader} is taken in {slice_dir}")


def _write_record(runtime_dir: str, session_id: str, record: dict[str, str | int | float],
                  quote: Callable[[str], str]) -> str:
    """DIR/hook/ID.json, atomically (temp file, rename): the daemon reads only whole records."""
    directory = f"{runtime_dir}/hook"
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = f"{directory}/{session_id}.json"
    tmp = f"{directory}/.{session_id}.json.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        data = (_object(record, quote) + "\n").encode()
        while data:
            data = data[os.write(fd, data):]
    finally:
        os.close(fd)
    os.rename(tmp, path)
    return path


def _move(scope_dir: str, pid: int) -> None:
    with open(f"{scope_dir}/cgroup.procs", "w") as f:
        f.write(str(pid))


def fail_safe(runtime_dir: str, params: dict[str, str | int], user: str, why: str,
              warn: Callable[[str], None], quote: Callable[[str], str]) -> None:
    """The daemon did not answer: track the login ourselves, for the daemon to adopt.

    Order matters: scope (the claim), then the record, then the move; so a leader is never in
    a scope the daemon has no record of (it would take such a scope for an orphan and stop it).
    """
    leader = int(params["leader"])
    try:
        root, root_in_mount = _managed_root(runtime_dir)
        cgroup, start = _proc_fields(leader)
    except (OSError, ValueError, IndexError) as e:
        warn(f"logoutd did not answer ({why}) and the hook cannot track the session of user "
             f"{user} itself: {e}; login proceeds untracked")
        return
    if cgroup.startswith(root_in_mount.rstrip("/") + "/user.slice/user-"):
        return  # su/sudo inside a session, or the daemon moved it after all
    uid = params["uid"]
    scope = ""
    try:
        os.umask(0o022)  # the same modes as the daemon's cgroups
        slice_dir = f"{root}/user.slice/user-{uid}.slice"
        os.makedirs(slice_dir, exist_ok=True)
        session_id = _claim(root, slice_dir, leader, start)
        scope = f"user.slice/user-{uid}.slice/session-{session_id}.scope"
        record: dict[str, str | int | float] = {
            "v": 1, "id": session_id, "scope": scope, "user": user, "leader_start": start,
            "timestamp": time.time(), "why": why, **params}
        try:
            _write_record(runtime_dir, session_id, record, quote)
        except OSError:
            os.rmdir(f"{root}/{scope}")  # no record, no scope: fail open rather than orphaned
            raise
        try:
            _move(f"{root}/{scope}", leader)
        except FileNotFoundError:  # a daemon starting just now removed it as an empty orphan
            os.makedirs(f"{root}/{scope}", exist_ok=True)
            _move(f"{root}/{scope}", leader)
    except OSError as e:
        where = f" ({root}/{scope})" if scope else ""
        warn(f"logoutd did not answer ({why}) and the hook could not track the session of "
             f"user {user}{where}: {e}; login proceeds untracked unless logoutd adopts it")
        return
    warn(f"logoutd did not answer ({why}); session {session_id} of user {user} tracked by the "
         f"hook in {root}/{scope}; logoutd adopts it when it answers")
