"""Paths that the tests' unprivileged users can read.

Tests run code as test users (logoutctl in a session, the shell integration script). The
checkout may sit under a directory only root may enter (CI clones wherever it likes), so
when a path is not readable by everyone, a copy is made once in a world-readable temp dir
and removed when the test process exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import stat
import tempfile
from pathlib import Path

_copies: Path | None = None


def _open_to_all(path: Path) -> bool:
    """Every directory on the way is o+x, and the path itself o+r (o+rx for a directory)."""
    for parent in path.parents:
        if not os.stat(parent).st_mode & stat.S_IXOTH:
            return False
    mode = os.stat(path).st_mode
    need = stat.S_IROTH | (stat.S_IXOTH if stat.S_ISDIR(mode) else 0)
    return mode & need == need


def for_users(path: Path) -> Path:
    """path itself if everyone can read it, else a world-readable copy of it."""
    global _copies
    path = path.resolve()
    if _open_to_all(path):
        return path
    if _copies is None:
        _copies = Path(tempfile.mkdtemp(prefix="logoutd-test-readable-"))
        atexit.register(shutil.rmtree, _copies, True)
        _copies.chmod(0o755)
    dest = _copies / path.name
    if not dest.exists():
        if path.is_dir():
            shutil.copytree(path, dest, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, dest)
        for root, _dirs, files in os.walk(dest):
            os.chmod(root, 0o755)
            for name in files:
                os.chmod(os.path.join(root, name), 0o644)
    return dest
