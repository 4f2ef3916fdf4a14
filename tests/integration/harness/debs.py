"""Debian packages the tests use but must not install (libpam-elogind conflicts with
libpam-systemd): `apt-get download`, then `dpkg-deb -x` into a directory kept for the run.

`LOGOUTD_TEST_DEBS=DIR` names a directory already holding the .deb files (an offline CI).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

_unpacked: dict[str, Path | str] = {}


def unpacked(package: str) -> Path | str:
    """The root of `package`'s unpacked files, or why it cannot be had (once per run)."""
    if package not in _unpacked:
        _unpacked[package] = _unpack(package)
    return _unpacked[package]


def _unpack(package: str) -> Path | str:
    tmp = Path(tempfile.mkdtemp(prefix="logoutd-test-deb-"))
    atexit.register(shutil.rmtree, tmp, True)
    tmp.chmod(0o755)
    given = os.environ.get("LOGOUTD_TEST_DEBS")
    if given:
        debs = sorted(Path(given).glob(f"{package}_*.deb"))
    else:
        if shutil.which("apt-get") is None:
            return "apt-get not available"
        try:
            got = subprocess.run(["apt-get", "download", "-qq", package], cwd=tmp,
                                 capture_output=True, text=True, timeout=120)
            if got.returncode != 0:  # a machine whose package lists were never fetched
                subprocess.run(["apt-get", "update", "-qq"], capture_output=True, timeout=300)
                got = subprocess.run(["apt-get", "download", "-qq", package], cwd=tmp,
                                     capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            return f"apt-get download {package} took too long"
        if got.returncode != 0:
            return f"apt-get download {package} failed: {got.stderr.strip()[-300:]}"
        debs = sorted(tmp.glob(f"{package}_*.deb"))
    if not debs:
        return f"no {package}_*.deb downloaded" + (f" in {given}" if given else "")
    root = tmp / "root"
    done = subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(root)], capture_output=True,
                          text=True, timeout=60)
    if done.returncode != 0:
        return f"dpkg-deb -x {debs[-1]} failed: {done.stderr.strip()}"
    return root
