"""The runit, s6 and sysvinit service files of contrib/, run by the real runsv, s6-supervise and
start-stop-daemon: each starts the daemon (pointed at this test's cgroup root and temp dirs
through the settings file it reads), reloads it, and stops it without touching a session."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from logoutd.api.client import Client
from tests.integration.harness.daemon import Daemon, src_dir
from tests.integration.harness.procs import wait_for

REPO = Path(__file__).resolve().parents[2]


def _settings(env, daemon: Daemon, **more: str) -> str:  # type: ignore[no-untyped-def]
    """The sh settings file: LOGOUTD runs this checkout, LOGOUTD_OPTS the harness' paths."""
    argv = daemon.argv()
    i = argv.index("--log-target")
    opts = argv[3:i] + argv[i + 2:]
    values = {"LOGOUTD": f"/usr/bin/env PYTHONPATH={src_dir()} {sys.executable} -m logoutd",
              "LOGOUTD_OPTS": shlex.join(opts), **more}
    return "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items())


def _status(daemon: Daemon) -> dict | None:  # type: ignore[type-arg]
    try:
        with Client(daemon.socket, timeout=2.0) as c:
            return c.call("status")  # type: ignore[no-any-return]
    except OSError:
        return None


def _pid_gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists() or \
        Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def _service_dir(env, kind: str) -> Path:  # type: ignore[no-untyped-def]
    target = env.tmp / f"sv-{kind}"
    shutil.copytree(REPO / f"contrib/{kind}/logoutd", target)
    return target


@pytest.fixture
def stopped_daemon(env) -> Iterator[Daemon]:  # type: ignore[no-untyped-def]
    yield env.daemon(start=False)


@pytest.mark.skipif(shutil.which("runsv") is None, reason="runit is not installed")
def test_runit_run_script(env, stopped_daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = stopped_daemon
    sv = _service_dir(env, "runit")
    logdir = env.tmp / "svlog"
    (sv / "conf").write_text(_settings(env, daemon, LOGDIR=str(logdir)))
    runsv = subprocess.Popen(["runsv", str(sv)], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status = wait_for(lambda: _status(daemon), 30, "the daemon under runsv to answer")
        pid = status["pid"]
        out = subprocess.run(["sv", "status", str(sv)], capture_output=True, text=True, timeout=30)
        assert out.stdout.startswith(f"run: {sv}: (pid {pid})"), out.stdout
        subprocess.run(["sv", "reload", str(sv)], check=True, timeout=30)
        wait_for(lambda: "Config file reloaded." in (logdir / "current").read_text()
                 if (logdir / "current").exists() else False, 30, "the reload in svlogd's log")
        subprocess.run(["sv", "down", str(sv)], check=True, timeout=30, capture_output=True)
        wait_for(lambda: _pid_gone(pid), 30, "the daemon to exit after sv down")
        out = subprocess.run(["sv", "status", str(sv)], capture_output=True, text=True, timeout=30)
        assert out.stdout.startswith(f"down: {sv}: "), out.stdout
        assert "Stopping; 0 sessions stay" in (logdir / "current").read_text()
    finally:
        subprocess.run(["sv", "exit", str(sv)], capture_output=True, timeout=30)
        try:
            runsv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            runsv.kill()
            runsv.wait()


@pytest.mark.skipif(shutil.which("s6-supervise") is None, reason="s6 is not installed")
def test_s6_run_script(env, stopped_daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = stopped_daemon
    sv = _service_dir(env, "s6")
    log = env.tmp / "s6.log"
    (sv / "conf").write_text(_settings(env, daemon))
    with open(log, "ab") as out:
        supervise = subprocess.Popen(["s6-supervise", str(sv)], stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=out)
    try:
        status = wait_for(lambda: _status(daemon), 30, "the daemon under s6-supervise to answer")
        pid = status["pid"]
        out = subprocess.run(["s6-svstat", str(sv)], capture_output=True, text=True, timeout=30)
        assert out.stdout.startswith(f"up (pid {pid})"), out.stdout
        subprocess.run(["s6-svc", "-h", str(sv)], check=True, timeout=30)
        wait_for(lambda: "Config file reloaded." in log.read_text(), 30, "the reload in the log")
        subprocess.run(["s6-svc", "-wd", "-T", "30000", "-d", str(sv)], check=True, timeout=40)
        wait_for(lambda: _pid_gone(pid), 30, "the daemon to exit after s6-svc -d")
        out = subprocess.run(["s6-svstat", str(sv)], capture_output=True, text=True, timeout=30)
        assert out.stdout.startswith("down "), out.stdout
        assert "Stopping; 0 sessions stay" in log.read_text()
    finally:
        subprocess.run(["s6-svc", "-x", str(sv)], capture_output=True, timeout=30)
        try:
            supervise.wait(timeout=30)
        except subprocess.TimeoutExpired:
            supervise.kill()
            supervise.wait()


@pytest.mark.skipif(shutil.which("start-stop-daemon") is None, reason="no start-stop-daemon")
def test_sysvinit_script(env, stopped_daemon: Daemon) -> None:  # type: ignore[no-untyped-def]
    daemon = stopped_daemon
    script = REPO / "contrib/sysvinit/logoutd"
    defaults = env.tmp / "default-logoutd"
    log, pidfile = env.tmp / "sysv.log", env.tmp / "logoutd.pid"
    cgroup = env.cgroup_root / "logoutd.daemon"
    defaults.write_text(_settings(env, daemon, LOGFILE=str(log), PIDFILE=str(pidfile),
                                  DAEMON_CGROUP=str(cgroup)))
    environ = dict(os.environ, LOGOUTD_DEFAULTS=str(defaults))
    environ.pop("DBUS_SYSTEM_BUS_ADDRESS", None)

    def run(verb: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), verb], capture_output=True, text=True, timeout=60,
                              env=environ)

    assert run("status").returncode == 3
    try:
        started = run("start")
        assert started.returncode == 0, started
        status = wait_for(lambda: _status(daemon), 30, "the daemon started by the script")
        pid = status["pid"]
        assert int(pidfile.read_text()) == pid
        # It left the caller's cgroup for its own, outside the user.slice it manages.
        own = Path(f"/proc/{pid}/cgroup").read_text().strip()
        assert own.endswith("/logoutd.daemon"), own
        shown = run("status")
        assert shown.returncode == 0 and f"running (pid {pid})" in shown.stdout, shown
        again = run("start")
        assert again.returncode == 0 and "already running" in again.stdout, again
        assert run("reload").returncode == 0
        wait_for(lambda: "Config file reloaded." in log.read_text(), 30, "the reload in LOGFILE")
        stopped = run("stop")
        assert stopped.returncode == 0, stopped
        assert _pid_gone(pid) and not pidfile.exists()
        assert "Stopping; 0 sessions stay" in log.read_text()
        assert run("status").returncode == 3
    finally:
        run("stop")
        if cgroup.exists():
            cgroup.rmdir()
