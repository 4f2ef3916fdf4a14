"""Users from NSS, their runtime dirs, linger flags and IPC objects."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import grp
import logging
import os
import pwd
import secrets
import subprocess
from pathlib import Path

from logoutd.config.model import Config, TmpfsSize
from logoutd.core.ports import Account
from logoutd.errors import InvalidArgument, LogoutdError

log = logging.getLogger("logoutd")
IPC_RMID = 0
MOUNT_TIMEOUT_SEC = 10  # mount/umount of a tmpfs: root's own tools, on a path we checked
REMOVE_TIMEOUT_SEC = 300  # the rm child of a runtime dir renamed aside (a user-made tree)
POSIX_IPC_DIRS = ("/dev/shm", "/dev/mqueue")
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

    def __init__(self, user_runtime_root: Path, linger_dir: Path,
                 tmpfs_size: TmpfsSize = Config.runtime_directory_size,
                 ipc_dirs: tuple[str, ...] = POSIX_IPC_DIRS):
        self.root = user_runtime_root
        self.ipc_dirs = ipc_dirs
        self.linger_dir = linger_dir
        self.tmpfs = user_runtime_root == Path("/run/user")
        self.tmpfs_size = tmpfs_size  # RuntimeDirectorySize=; a reload sets it anew
        self._removers: list[subprocess.Popen[bytes]] = []  # rm -rf children of removed dirs

    def create_runtime_dir(self, account: Account) -> str:
        """ROOT/UID, 0700, the user's: a tmpfs where wanted. Never follows a symlink there."""
        path = self.root / str(account.uid)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o755)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
        os.close(_open_dir(path))  # refuse a symlink or a non-directory before mounting on it
        if self.tmpfs and not os.path.ismount(path):
            options = (f"mode=0700,uid={account.uid},gid={account.gid},"
                       f"size={self.tmpfs_size.bytes()}")
            result = _run(["mount", "-t", "tmpfs", "-o", f"nosuid,nodev,{options}", "tmpfs",
                           str(path)])
            if result is not None:
                log.warning("Cannot mount tmpfs on %s, using a plain directory: %s", path, result)
        fd = _open_dir(path)  # the tmpfs root if one was mounted
        try:
            os.fchown(fd, account.uid, account.gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        return str(path)

    def remove_runtime_dir(self, uid: int) -> None:
        """Gone from ROOT/UID at once; what the user put in it is freed without the daemon
        walking it: a tmpfs is lazily unmounted (the kernel frees it), a plain directory is
        renamed aside and removed by a child process (rm does not follow symlinks)."""
        self._reap_removers()
        path = self.root / str(uid)
        if os.path.ismount(path):
            failed = _run(["umount", "-l", str(path)])
            if failed is not None:
                log.warning("Cannot unmount %s: %s", path, failed)
        try:
            os.rmdir(path)  # the usual case after the unmount: the empty mount point
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EBUSY):
                log.warning("Cannot remove runtime dir %s: %s", path, e.strerror)
                return
        aside = self.root / f".removing-{uid}-{secrets.token_hex(4)}"
        try:
            if os.path.islink(path) or not os.path.isdir(path):
                os.unlink(path)  # a file or a symlink where the dir was: the link, not its target
                return
            os.rename(path, aside)
        except OSError as e:
            log.warning("Cannot remove runtime dir %s: %s", path, e.strerror)
            return
        self._removers.append(subprocess.Popen(
            ["timeout", str(REMOVE_TIMEOUT_SEC), "rm", "-rf", "--one-file-system", "--",
             str(aside)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def _reap_removers(self) -> None:
        self._removers = [p for p in self._removers if p.poll() is None]

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
        """SysV shm, semaphores and queues owned by uid, now (logind's RemoveIPC=); returns how
        many. POSIX shm and mqueues (/dev/shm, /dev/mqueue) go in a child process: any user
        can fill those directories with millions of entries, and the daemon must not list
        them on its loop at every other user's logout."""
        removed = 0
        for table, func in (("shm", "shmctl"), ("sem", "semctl"), ("msg", "msgctl")):
            removed += _remove_sysv(table, func, uid)
        self._reap_removers()
        dirs = [d for d in self.ipc_dirs if os.path.isdir(d)]
        if dirs:
            self._removers.append(subprocess.Popen(
                ["timeout", str(REMOVE_TIMEOUT_SEC), "find", *dirs, "-xdev", "-mindepth", "1",
                 "-maxdepth", "1", "-uid", str(uid), "-exec", "rm", "-rf", "--one-file-system",
                 "--", "{}", "+"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        return removed


def _open_dir(path: Path) -> int:
    """An fd of the directory itself; a symlink or anything else there is refused."""
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):  # O_DIRECTORY|O_NOFOLLOW: ENOTDIR on a link
            what = "a symlink" if os.path.islink(path) else "not a directory"
            raise LogoutdError(f"Refusing runtime dir {path}: it is {what}.") from None
        raise LogoutdError(f"Cannot open runtime dir {path}: {e.strerror}.") from None


def _run(argv: list[str]) -> str | None:
    """Run a mount tool with a deadline; None on success, else why it failed."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                timeout=MOUNT_TIMEOUT_SEC)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return None if result.returncode == 0 else result.stderr.strip() or f"exit {result.returncode}"


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
