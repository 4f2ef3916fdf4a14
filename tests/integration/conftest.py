"""Fixtures for the integration tests: real cgroups, real PAM, real sshd on 127.0.0.1.

Needs root, a cgroup2 mount with cgroup.kill, openssh-server, unshare and useradd; otherwise
every test here is skipped with the reason.  Each test gets its own cgroup subtree
`<cgroup2>/logoutd-test-<hex>`, socket, config, state dirs, users and PAM service, all removed
after the test (processes first) even when it fails.

The daemon's log is printed when a test fails (or always, with LOGOUTD_TEST_SHOW_LOG=1).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent

try:  # PYTHONPATH=src or an installed package; else the repository's src/
    import logoutd  # noqa: F401
except ImportError:
    sys.path.insert(0, str(HERE.parent.parent / "src"))

from tests.integration.harness import bus as buses  # noqa: E402
from tests.integration.harness import cgroups  # noqa: E402
from tests.integration.harness.daemon import Daemon  # noqa: E402
from tests.integration.harness.env import Env  # noqa: E402
from tests.integration.harness.pam import PamService  # noqa: E402
from tests.integration.harness.sshd import SSHD, Sshd  # noqa: E402
from tests.integration.harness.su import SuRunner  # noqa: E402
from tests.integration.harness.users import TestUser  # noqa: E402


def _why_not_runnable() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (cgroups, useradd, PAM, sshd)"
    mount = cgroups.cgroup2_mount()
    if mount is None:
        return "no cgroup2 mount in /proc/mounts"
    if not os.access(mount, os.W_OK):
        return f"cgroup2 mount {mount} is not writable"
    for tool in ("unshare", "useradd", "userdel", "ssh", "ssh-keygen", "su", "runuser"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not SSHD.exists():
        return f"{SSHD} not installed (openssh-server)"
    return None


_WHY = _why_not_runnable()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _WHY is None:
        return
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.skip(reason=_WHY))


@pytest.fixture
def env(request: pytest.FixtureRequest) -> Iterator[Env]:
    """The test's world; its cleanup runs every registered step even if the test failed."""
    with world_for(request) as world:
        yield world


@pytest.fixture
def slice_env(request: pytest.FixtureRequest) -> Iterator[Env]:
    """As env, with the cgroup root named `*.slice` (one libsystemd's sd-login can parse)."""
    with world_for(request, root_suffix=".slice") as world:
        yield world


@contextlib.contextmanager
def world_for(request: pytest.FixtureRequest, root_suffix: str = "") -> Iterator[Env]:
    """An Env for the test (`root_suffix`: e.g. ".slice", a cgroup root sd-login parses),
    its daemons' logs shown when it failed, and everything it made removed."""
    mount = cgroups.cgroup2_mount()
    assert mount is not None
    world = Env(mount, root_suffix=root_suffix)
    try:
        yield world
    finally:
        rep = getattr(request.node, "rep_call", None)
        if (rep is not None and rep.failed) or os.environ.get("LOGOUTD_TEST_SHOW_LOG"):
            for d in world.daemons:
                sys.stderr.write(f"\n---- logoutd log {d.log_path} ----\n{d.log_tail(200)}\n")
        errors = world.cleanup.run()
        if errors:
            pytest.fail("cleanup failed:\n" + "\n".join(errors), pytrace=False)
        leftovers = [p for p in (world.cgroup_root, world.tmp) if p.exists()]
        if leftovers:
            pytest.fail(f"cleanup left {leftovers}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def make_user(env: Env) -> Callable[[], TestUser]:
    return env.user


@pytest.fixture
def user(env: Env) -> TestUser:
    return env.user()


@pytest.fixture
def user2(env: Env) -> TestUser:
    return env.user()


@pytest.fixture
def pam(env: Env) -> PamService:
    """/etc/pam.d/logoutd-test-<hex> with the logoutd hook (and the su/runuser copies)."""
    return env.pam()


@pytest.fixture
def start_daemon(env: Env) -> Callable[..., Daemon]:
    """start_daemon(config=None, start=True): a logoutd on env.socket; config = a drop-in text."""
    return env.daemon


@pytest.fixture
def daemon(env: Env) -> Daemon:
    return env.daemon()


@pytest.fixture
def sshd(env: Env, pam: PamService) -> Sshd:
    return env.sshd(pam)


@pytest.fixture
def su(env: Env, pam: PamService) -> SuRunner:
    return env.su(pam)


# -- org.freedesktop.login1 (logoutd --dbus) ------------------------------------------------------


def _pam_systemd_installed() -> bool:
    dirs = [Path("/usr/lib/security"), Path("/usr/lib64/security"), Path("/lib/security"),
            *Path("/usr/lib").glob("*/security"), *Path("/lib").glob("*/security")]
    return any((d / "pam_systemd.so").exists() for d in dirs)


def _why_no_dbus() -> str | None:
    why = buses.available()
    if why is not None:
        return why
    try:
        import dbus_fast  # noqa: F401
    except ImportError:
        return "dbus-fast not installed (pip install -e '.[dbus]'): no logoutd --dbus"
    if shutil.which("busctl") is None:
        return "busctl not installed (systemd)"
    return None


@pytest.fixture
def bus(env: Env) -> buses.PrivateBus:
    """A private system bus (dbus-daemon) for the test; skips where it cannot work."""
    why = _why_no_dbus()
    if why is not None:
        pytest.skip(why)
    return env.bus()


@pytest.fixture
def dbus_daemon(env: Env, bus: buses.PrivateBus) -> Daemon:
    """A logoutd serving org.freedesktop.login1 on the test's private bus (`--dbus`)."""
    return env.daemon(dbus=bus)


@pytest.fixture
def systemd_pam(env: Env) -> PamService:
    """/etc/pam.d/logoutd-test-<hex> (and su/runuser copies) with stock pam_systemd.so and no
    logoutd hook."""
    if not _pam_systemd_installed():
        pytest.skip("pam_systemd.so not installed (libpam-systemd)")
    return env.pam(systemd=True)
