"""Users from NSS, their runtime dirs, linger flags and IPC objects."""

from __future__ import annotations

import ctypes
import grp
import logging
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from logoutd.config.values import tmpfs_size_bytes
from logoutd.core.ports import Account
from logoutd.errors import InvalidArgument

log = logging.getLogger("logoutd")
IPC_RMID = 0
_libc = ctypes.CDLL(None, use_errno=True)


class UserDb:
    def by_uid(self, uid: int) -> Account | None:
        try:
            return _account(pwd.getpwuid(uid))
        except (KeyError, OverflowError):
            return None

    def by_name(self, name: str) -> Account | None:
        try:
            return _account(pwd.getpwnam(name))
        except KeyError:
            return None

    def group_names(self, account: Account) -> tuple[str, ...]:
        names = []
        for gid in os.getgrouplist(account.name, account.gid):
            try:
                names.append(grp.getgrgid(gid).gr_name)
            except KeyError:
                continue
        return tuple(names)


def _account(entry: pwd.struct_passwd) -> Account:
    return Account(uid=entry.pw_uid, gid=entry.pw_gid, name=entry.pw_name, home=entry.pw_dir)


class UserFiles:
    """Runtime dirs under user_runtime_root (a tmpfs each when the root is /run/user)."""

    def __init__(self, user_runtime_root: Path, linger_dir: Path, tmpfs_size: str = "10%"):
        self.root = user_runtime_root
        self.linger_dir = linger_dir
        self.tmpfs = user_runtime_root == Path("/run/user")
        self.tmpfs_size = tmpfs_size

    def create_runtime_dir(self, account: Account) -> str:
        path = self.root / str(account.uid)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.mkdir(mode=0o700, exist_ok=True)
        if self.tmpfs and not os.path.ismount(path):
            page = os.sysconf("SC_PAGE_SIZE")
            size = tmpfs_size_bytes(self.tmpfs_size, page * os.sysconf("SC_PHYS_PAGES"), page)
            options = f"mode=0700,uid={account.uid},gid={account.gid},size={size}"
            result = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"nosuid,nodev,{options}", "tmpfs", str(path)],
                capture_output=True, text=True, check=False,
            )
            if result.returncode != 0:
                log.warning("Cannot mount tmpfs on %s, using a plain directory: %s",
                            path, result.stderr.strip())
        os.chown(path, account.uid, account.gid)
        os.chmod(path, 0o700)
        return str(path)

    def remove_runtime_dir(self, uid: int) -> None:
        path = self.root / str(uid)
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        shutil.rmtree(path, ignore_errors=True)

    def is_lingering(self, name: str) -> bool:
        return (self.linger_dir / name).exists()

    def set_linger(self, name: str, enable: bool) -> None:
        """One empty file per user, named after the user (logind's /var/lib/systemd/linger)."""
        if not name or "/" in name or name.startswith("."):
            raise InvalidArgument(f"Invalid user name '{name}' for a linger file.")
        path = self.linger_dir / name
        if enable:
            self.linger_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
            path.touch(mode=0o644, exist_ok=True)
        else:
            path.unlink(missing_ok=True)

    def lingering_names(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.linger_dir) if e.is_file())
        except FileNotFoundError:
            return []

    def remove_ipc(self, uid: int) -> int:
        """SysV shm, semaphores, queues and POSIX shm/mqueues owned by uid (logind's RemoveIPC=)."""
        removed = 0
        for table, func in (("shm", "shmctl"), ("sem", "semctl"), ("msg", "msgctl")):
            removed += _remove_sysv(table, func, uid)
        for directory in (Path("/dev/shm"), Path("/dev/mqueue")):
            try:
                entries = list(os.scandir(directory))
            except OSError:
                continue
            for entry in entries:
                try:
                    if entry.stat(follow_symlinks=False).st_uid == uid:
                        os.unlink(entry.path)
                        removed += 1
                except OSError:
                    continue
        return removed


def _remove_sysv(table: str, func: str, uid: int) -> int:
    try:
        lines = Path(f"/proc/sysvipc/{table}").read_text().splitlines()
    except OSError:
        return 0
    if not lines:
        return 0
    header = lines[0].split()
    if "uid" not in header or (table == "sem" and "semid" not in header):
        return 0
    id_col = header.index({"shm": "shmid", "sem": "semid", "msg": "msqid"}[table])
    uid_col = header.index("uid")
    removed = 0
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > max(id_col, uid_col) and int(fields[uid_col]) == uid:
            ipc_id = int(fields[id_col])
            if func == "semctl":
                ok = _libc.semctl(ipc_id, 0, IPC_RMID) == 0
            else:
                ok = getattr(_libc, func)(ipc_id, IPC_RMID, None) == 0
            removed += ok
    return removed
