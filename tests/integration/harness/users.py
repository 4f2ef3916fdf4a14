"""Throw-away test users `lgtst<hex>` with an ssh key pair."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .procs import kill_uid

PREFIX = "lgtst"


@dataclass(frozen=True)
class TestUser:
    name: str
    uid: int
    gid: int
    home: Path
    key: Path  # private key (in the test temp dir, owned by root, 0600)

    __test__ = False  # not a pytest test class


def create_user(tmp: Path) -> TestUser:
    """useradd -m, a fresh ed25519 key pair, authorized_keys in the user's home."""
    name = f"{PREFIX}{secrets.token_hex(6)}"
    assert len(name) <= 32
    subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True, capture_output=True)
    pw = pwd.getpwnam(name)
    home = Path(pw.pw_dir)
    key = tmp / f"id_{name}"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
        check=True,
        capture_output=True,
    )
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    auth = ssh_dir / "authorized_keys"
    auth.write_text(key.with_suffix(".pub").read_text())
    auth.chmod(0o600)
    for p in (ssh_dir, auth):
        os.chown(p, pw.pw_uid, pw.pw_gid)
    return TestUser(name, pw.pw_uid, pw.pw_gid, home, key)


def kill_user_processes(user: TestUser) -> list[int]:
    return kill_uid(user.uid)


def remove_user(user: TestUser) -> None:
    """userdel -r (the user's processes must already be gone); tolerate a missing user."""
    if not user.name.startswith(PREFIX):
        raise ValueError(f"refusing to remove {user.name}")
    try:
        pwd.getpwnam(user.name)
    except KeyError:
        return
    r = subprocess.run(["userdel", "-r", user.name], capture_output=True, text=True)
    # 12 = "can't remove home directory" (e.g. mail spool missing): the user itself is gone.
    if r.returncode not in (0, 12):
        r = subprocess.run(["userdel", "-f", "-r", user.name], capture_output=True, text=True)
    try:
        pwd.getpwnam(user.name)
    except KeyError:
        return
    raise RuntimeError(f"userdel {user.name} failed: {r.returncode} {r.stderr.strip()}")
