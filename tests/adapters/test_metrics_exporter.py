"""The exporter behind --metrics-listen over a manager on fakes: what the core tells it, read back
from the exposition text, and that text checked by Prometheus' own `promtool check metrics`."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator

import pytest

pytest.importorskip("prometheus_client", reason="prometheus_client not installed (logoutd[metrics])")

from prometheus_client.parser import text_string_to_metric_families

from logoutd.api.service import Caller, DaemonInfo, Service
from logoutd.config.model import Config, KillMode
from logoutd.config.parse import ConfigResult, ConfigWarning
from logoutd.core.request import SessionRequest
from logoutd.daemon.metrics import OTHER, PROGRAMS_MAX, DaemonMetrics, ProgramLabels
from logoutd.daemon.runtime import ConfigHealth
from tests.unit.conftest import Core, make_core

PROMTOOL = shutil.which("promtool")
CLEAN = ConfigHealth(0, 0, True)


@pytest.fixture
def sock() -> Iterator[socket.socket]:
    with socket.socket() as s:
        yield s


def exporter(sock: socket.socket, config: Config | None = None,
             health: ConfigHealth = CLEAN) -> tuple[Core, DaemonMetrics]:
    core = make_core(config)
    metrics = DaemonMetrics(sock)
    core.ports.metrics = metrics
    metrics.watch(core.manager, lambda: health)
    return core, metrics


def samples(metrics: DaemonMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and sorted labels."""
    text = metrics.render()[0].decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def login(core: Core, uid: int = 1000) -> int:
    leader = core.world.spawn(uid=0)
    core.manager.create_session(SessionRequest(uid=uid, leader=leader.pid))
    return leader.pid


def test_live_gauges_are_read_at_scrape_time(sock: socket.socket) -> None:
    core, metrics = exporter(sock, health=ConfigHealth(3, 2, False))
    leaders = [login(core), login(core), login(core, 1001)]
    core.manager.sessions["c1"].release()
    got = samples(metrics)
    assert got[("logoutd_sessions", (("state", "active"),))] == 2
    assert got[("logoutd_sessions", (("state", "closing"),))] == 1
    assert got[("logoutd_sessions", (("state", "opening"),))] == 0
    assert got[("logoutd_users", (("state", "active"),))] == 2
    assert got[("logoutd_kill_user_processes", (("mode", "yes"),))] == 1
    assert got[("logoutd_kill_user_processes", (("mode", "permissive"),))] == 0
    assert got[("logoutd_config_warnings", ())] == 3 and got[("logoutd_config_ignored_lines", ())] == 2
    assert got[("logoutd_config_last_reload_successful", ())] == 0
    for pid in leaders:
        core.world.exit(pid)
    got = samples(metrics)
    assert got[("logoutd_sessions", (("state", "active"),))] == 0
    assert got[("logoutd_users", (("state", "active"),))] == 0


def test_counters_follow_the_core(sock: socket.socket) -> None:
    core, metrics = exporter(sock, Config(session_stop_timeout_sec=5))
    leader = login(core)
    scope = core.world.procs[leader].cgroup
    core.world.spawn(cgroup=scope, ignores=[signal.SIGHUP])
    core.world.spawn(cgroup=scope, ignores=[signal.SIGTERM, signal.SIGHUP])
    core.world.exit(leader)
    core.clock.advance(5.1)
    got = samples(metrics)
    assert got[("logoutd_sessions_started_total", (("origin", "api"),))] == 1
    assert got[("logoutd_sessions_stopped_total", (("action", "kill"), ("cause", "leader-exit")))] == 1
    assert got[("logoutd_sessions_stopped_total", (("action", "record"), ("cause", "terminate")))] == 0
    assert got[("logoutd_stop_signalled_processes_total", (("owner", "session"),))] == 2
    assert got[("logoutd_stop_timeouts_total", (("owner", "session"),))] == 1
    assert got[("logoutd_stop_sigkilled_processes_total", (("owner", "session"),))] == 1
    assert got[("logoutd_keep_requests_total", (("result", "denied"), ("source", "unit")))] == 0


def test_permissive_leftovers_by_program(sock: socket.socket) -> None:
    core, metrics = exporter(sock, Config(kill_user_processes=KillMode.PERMISSIVE))
    leader = login(core)
    for _ in range(3):
        core.world.spawn(cgroup=core.world.procs[leader].cgroup)
    core.world.exit(leader)
    got = samples(metrics)
    assert got[("logoutd_leftovers_total", (("program", "sleep"),))] == 3
    assert got[("logoutd_leftovers_total", (("program", OTHER),))] == 0
    assert got[("logoutd_sessions_stopped_total", (("action", "record"), ("cause", "leader-exit")))] == 1
    assert got[("logoutd_kill_user_processes", (("mode", "permissive"),))] == 1


def test_program_names_are_bounded(sock: socket.socket) -> None:
    _, metrics = exporter(sock)
    names = [f"job{i}" for i in range(PROGRAMS_MAX + 5)]
    metrics.leftovers_recorded(names + names[:3] + [OTHER])
    got = {labels[0][1]: value for (name, labels), value in samples(metrics).items()
           if name == "logoutd_leftovers_total"}
    assert len(got) == PROGRAMS_MAX + 1
    assert got["job0"] == 2 and got[f"job{PROGRAMS_MAX - 1}"] == 1
    assert got[OTHER] == 6  # five late names and one that calls itself "other"
    assert sum(got.values()) == len(names) + 4


def test_program_labels_keep_their_slot() -> None:
    labels = ProgramLabels(2)
    assert [labels.label(n) for n in ("a", "b", "c", "a", "c", "b")] == ["a", "b", OTHER, "a", OTHER, "b"]


def test_create_session_latency_is_observed_by_the_service(sock: socket.socket) -> None:
    core, metrics = exporter(sock)
    service = Service(core.manager, DaemonInfo(reload=dict, config_files=list, cgroup_root="/"))
    leader = core.world.spawn(uid=0)
    params = {"uid": 1000, "leader": leader.pid, "service": "sshd"}
    service.call(Caller(0, 0, 1), "create_session", params)
    service.call(Caller(0, 0, 1), "create_session", params)  # existing: not a creation
    got = samples(metrics)
    assert got[("logoutd_create_session_seconds_count", ())] == 1
    assert got[("logoutd_create_session_seconds_bucket", (("le", "+Inf"),))] == 1
    assert 0 <= got[("logoutd_create_session_seconds_sum", ())] < 5


def test_config_health_counts_warnings_and_ignored_lines() -> None:
    warnings = (ConfigWarning("/etc/systemd/logind.conf", 3, "bad", key="KillUserProcesses"),
                ConfigWarning("/etc/systemd/logind.conf", 0, "world-writable", ignored=False))
    result = ConfigResult(Config(), warnings, ("/etc/systemd/logind.conf",), None)
    assert ConfigHealth.of(result) == ConfigHealth(2, 1, True)
    assert ConfigHealth.of(result, warnings[:1]) == ConfigHealth(1, 1, True)
    fatal = ConfigResult(Config(), (), (), ConfigWarning("/x", 0, "not UTF-8"))
    assert ConfigHealth.of(fatal) == ConfigHealth(0, 0, False)


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_the_exposition(sock: socket.socket) -> None:
    core, metrics = exporter(sock, Config(kill_user_processes=KillMode.PERMISSIVE))
    leader = login(core)
    core.world.spawn(cgroup=core.world.procs[leader].cgroup)
    core.world.exit(leader)
    metrics.leftovers_recorded(['we"ird\\name\n'])  # a user picks its comm: escaped, still valid
    metrics.session_create_seconds(0.004)
    text = metrics.render()[0]
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                          timeout=60)
    assert done.returncode == 0, (done.stdout + done.stderr).decode()
    assert b'program="we\\"ird\\\\name\\n"' in text
