"""Checks the daemon makes on its own situation at start: is the PAM hook enabled, and is the
daemon itself inside a cgroup it manages (and would kill at that logout)?"""

from __future__ import annotations

import os
from pathlib import Path

from logoutd.errors import CgroupError
from logoutd.system.cgroups import mount_of

HOOK_NAME = "logoutd-pam"


def pam_hook_enabled(pam_dir: Path, hook: Path) -> Path | None:
    """The first file under pam_dir that names the hook (its path or "logoutd-pam"), if any."""
    try:
        files = sorted(p for p in pam_dir.iterdir() if p.is_file())
    except OSError:
        return None
    for path in files:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            line = line.strip()
            if not line.startswith("#") and (str(hook) in line or HOOK_NAME in line):
                return path
    return None


def own_cgroup(proc_cgroup: Path = Path("/proc/self/cgroup")) -> str | None:
    """This process's cgroup2 path ("0::/…" in /proc/self/cgroup)."""
    try:
        for line in proc_cgroup.read_text().splitlines():
            if line.startswith("0::"):
                return line[3:]
    except OSError:
        pass
    return None


def inside_managed_tree(cgroup_root: Path, cgroup: str | None,
                        mounts: str = "/proc/mounts") -> str | None:
    """The warning to log when `cgroup` (this daemon's) lies under CGROUP_ROOT/user.slice."""
    if cgroup is None:
        return None
    try:
        mount = mount_of(cgroup_root, mounts)
    except (CgroupError, OSError):
        return None
    rel = os.path.relpath(cgroup_root.resolve(), mount)
    managed = ("" if rel == "." else "/" + rel) + "/user.slice/"
    if not cgroup.startswith(managed):
        return None
    parts = cgroup[len(managed):].split("/")
    scope = next((p for p in parts if p.startswith("session-") and p.endswith(".scope")), None)
    what = f"session scope {scope.removesuffix('.scope').removeprefix('session-')}" if scope \
        else "user slice"
    return (f"logoutd itself runs in {mount}{cgroup}, inside a {what} it manages: its processes "
            "would be killed when that ends (at that logout). Start it from the init system or "
            "move it out first (docs/install.md).")
