"""system/accounts.UserFiles on a real filesystem: runtime dirs are made without following a
symlink, and removed without the daemon walking what the user put in them (issue 11)."""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from logoutd.config import TmpfsSize, load_config
from logoutd.core.ports import Account
from logoutd.daemon.runtime import Runtime
from logoutd.errors import LogoutdError
from logoutd.paths import Paths
from logoutd.system.accounts import UserFiles
from tests.unit.conftest import make_core

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown and mount need root")
UID = 4242 if os.geteuid() == 0 else os.getuid()
GID = 4343 if os.geteuid() == 0 else os.getgid()
ACCOUNT = Account(UID, GID, "someone", "/nonexistent")


@pytest.fixture
def files(tmp_path: Path) -> UserFiles:
    return UserFiles(tmp_path / "user", tmp_path / "linger")


def wait_removed(files: UserFiles) -> None:
    for p in files._removers:
        p.wait(30)
    assert not [e for e in files.root.iterdir() if e.name.startswith(".removing-")]


def test_create_makes_a_private_dir_of_the_user(files: UserFiles) -> None:
    path = Path(files.create_runtime_dir(ACCOUNT))
    st = path.lstat()
    assert path == files.root / str(UID) and stat.S_ISDIR(st.st_mode)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (UID, GID, 0o700)
    path.chmod(0o755)
    files.create_runtime_dir(ACCOUNT)  # again: idempotent, and the mode is put right
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_create_refuses_a_symlink_and_leaves_its_target_alone(files: UserFiles,
                                                              tmp_path: Path) -> None:
    target = tmp_path / "etc-like"
    target.mkdir(mode=0o755)
    before = target.stat()
    files.root.mkdir()
    (files.root / str(UID)).symlink_to(target)
    with pytest.raises(LogoutdError, match=rf"Refusing runtime dir {files.root}/{UID}: "
                                           "it is a symlink"):
        files.create_runtime_dir(ACCOUNT)
    after = target.stat()
    assert (after.st_uid, after.st_gid, after.st_mode) == (before.st_uid, before.st_gid,
                                                           before.st_mode)


def test_create_refuses_a_file(files: UserFiles) -> None:
    files.root.mkdir()
    (files.root / str(UID)).write_text("x")
    with pytest.raises(LogoutdError, match="it is not a directory"):
        files.create_runtime_dir(ACCOUNT)


def test_remove_renames_aside_and_never_follows_links(files: UserFiles, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    path = Path(files.create_runtime_dir(ACCOUNT))
    deep = path
    for i in range(50):
        deep = deep / f"d{i}"
    deep.mkdir(parents=True)
    for i in range(2000):
        (path / f"f{i}").write_text("x")
    (path / "link-to-outside").symlink_to(outside)
    (deep / "link-to-outside").symlink_to(outside)
    os.mkfifo(path / "fifo")
    t0 = time.monotonic()
    files.remove_runtime_dir(UID)
    took = time.monotonic() - t0
    assert not path.exists() and not path.is_symlink()  # gone at once, for the next login
    print(f"\nremove_runtime_dir of 2000 files and 50 levels: {took * 1000:.1f} ms in the daemon")
    wait_removed(files)
    assert (outside / "precious").read_text() == "keep me"


def test_remove_of_a_symlink_removes_the_link_only(files: UserFiles, tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    (target / "precious").write_text("keep me")
    files.root.mkdir()
    (files.root / str(UID)).symlink_to(target)
    files.remove_runtime_dir(UID)
    assert not (files.root / str(UID)).is_symlink()
    assert (target / "precious").read_text() == "keep me"


def test_remove_of_an_empty_or_missing_dir_needs_no_child(files: UserFiles) -> None:
    files.remove_runtime_dir(UID)  # missing: nothing to do
    path = Path(files.create_runtime_dir(ACCOUNT))
    files.remove_runtime_dir(UID)
    assert not path.exists() and files._removers == []


@pytest.fixture
def tmpfs_files(files: UserFiles) -> Iterator[UserFiles]:
    files.tmpfs = True  # what /run/user gets
    files.tmpfs_size = TmpfsSize(size=1 << 20)
    yield files
    path = files.root / str(UID)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], check=False)


@needs_root
def test_tmpfs_runtime_dir_is_lazily_unmounted(tmpfs_files: UserFiles) -> None:
    path = Path(tmpfs_files.create_runtime_dir(ACCOUNT))
    assert os.path.ismount(path)
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (UID, GID, 0o700)
    for i in range(100):
        (path / f"f{i}").write_text("x")
    held = os.open(path / "f1", os.O_RDONLY)  # a process still holding a file: lazy unmount
    try:
        tmpfs_files.remove_runtime_dir(UID)
        assert not os.path.ismount(path) and not path.exists()
        assert tmpfs_files._removers == []  # the kernel frees the tmpfs, no walk at all
    finally:
        os.close(held)


@needs_root
def test_tmpfs_is_not_mounted_through_a_symlink(tmpfs_files: UserFiles, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    tmpfs_files.root.mkdir()
    (tmpfs_files.root / str(UID)).symlink_to(target)
    with pytest.raises(LogoutdError, match="it is a symlink"):
        tmpfs_files.create_runtime_dir(ACCOUNT)
    assert not os.path.ismount(target)


def _tmpfs_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


@needs_root
def test_tmpfs_size_follows_a_reload(tmp_path: Path) -> None:
    """RuntimeDirectorySize= of the last (re)load sizes the next runtime dir, as logind's."""
    paths = Paths(root=tmp_path / "root", runtime_dir=tmp_path / "run",
                  state_dir=tmp_path / "state", user_runtime_root=tmp_path / "user")
    conf = paths.root / "etc/systemd/logind.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text("[Login]\nRuntimeDirectorySize=1M\n")
    runtime = Runtime(paths, load_config(paths.root))
    runtime.userfiles.tmpfs = True  # what /run/user gets
    path = Path(runtime.userfiles.create_runtime_dir(ACCOUNT))
    try:
        assert _tmpfs_bytes(path) == 1 << 20
        runtime.userfiles.remove_runtime_dir(UID)
        conf.write_text("[Login]\nRuntimeDirectorySize=3M\n")
        assert runtime.reload(make_core().manager)["reloaded"] is True
        path = Path(runtime.userfiles.create_runtime_dir(ACCOUNT))
        assert _tmpfs_bytes(path) == 3 << 20
    finally:
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", str(path)], check=False)
