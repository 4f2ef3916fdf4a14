"""--metrics-listen against the real Prometheus server (Debian's `prometheus`, on 127.0.0.1 with
its own temp config and storage, scrape_interval 1s) scraping the real daemon through real ssh
logins; `promtool check metrics` on what the daemon serves; a port in use or a non-loopback
address refused in one line with nothing changed; prometheus_client never imported without the
option (issue 13, item 4)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness.cleanup import Phase
from tests.integration.harness.daemon import Daemon, src_dir
from tests.integration.harness.env import Env
from tests.integration.harness.login import script
from tests.integration.harness.procs import wait_for
from tests.integration.harness.sshd import free_port

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")
pytestmark = pytest.mark.skipif(not (PROMETHEUS.exists() and PROMTOOL.exists()),
                                reason="prometheus not installed (Debian package prometheus)")

RULES = Path(__file__).resolve().parents[2] / "contrib" / "prometheus" / "logoutd-alerts.yml"
SCRAPE_CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files: [{rules}]
scrape_configs:
  - job_name: logoutd
    static_configs:
      - targets: ["{target}"]
"""


class Prometheus:
    """A real Prometheus server on 127.0.0.1 scraping one target, in the test's temp dir."""

    def __init__(self, env: Env, target: str, rules: Path | None = None) -> None:
        self.dir = env.tmp / "prometheus"
        (self.dir / "data").mkdir(parents=True)
        if rules is not None:
            shutil.copy(rules, self.dir / rules.name)
        config = self.dir / "prometheus.yml"
        config.write_text(SCRAPE_CONFIG.format(target=target, rules=rules.name if rules else ""))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.dir / "prometheus.log"
        with open(self.log, "wb") as log:
            self.popen = subprocess.Popen(
                [str(PROMETHEUS), f"--config.file={config}",
                 f"--storage.tsdb.path={self.dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.dir)
        env.cleanup.add(Phase.PROCESSES, "stop prometheus", self.stop)
        wait_for(self.ready, 60, "prometheus to be ready", details=self.log_text)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def ready(self) -> bool:
        assert self.popen.poll() is None, f"prometheus exited:\n{self.log_text()}"
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
        with urllib.request.urlopen(url, timeout=5) as answer:
            data = json.load(answer)
        assert data["status"] == "success", data
        result: list[dict[str, Any]] = data["data"]["result"]
        return result

    def value(self, expr: str) -> float | None:
        """The single value of an instant query, or None while it has no result."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_value(self, expr: str, expected: float, timeout: float = 60.0) -> None:
        wait_for(lambda: self.value(expr) == expected, timeout,
                 f"prometheus to answer {expr} = {expected:g}", interval=0.25,
                 details=lambda: f"now {self.query(expr)}\n{self.log_text()}")


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def metrics_daemon(env: Env, metrics_port: int) -> Iterator[Daemon]:
    daemon = env.daemon(start=False)
    daemon.extra_args = ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    daemon.start(timeout=20)
    yield daemon


def scrape(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        body: bytes = answer.read()
        return body


def test_prometheus_sees_three_ssh_logins(env: Env, pam, user, user2, metrics_daemon: Daemon,  # type: ignore[no-untyped-def]
                                          metrics_port: int) -> None:
    prometheus = Prometheus(env, f"127.0.0.1:{metrics_port}")
    prometheus.wait_value('up{job="logoutd"}', 1)
    prometheus.wait_value('logoutd_sessions{state="active"}', 0)

    logins = [env.login("ssh", pam, u, script("nohup")) for u in (user, user, user2)]
    for login in logins:
        env.track(login.wait_ready().values())
    metrics_daemon.wait_for(lambda: len(metrics_daemon.sessions()) == 3, 30, "three sessions")
    prometheus.wait_value('logoutd_sessions{state="active"}', 3)
    prometheus.wait_value('logoutd_users{state="active"}', 2)
    prometheus.wait_value('logoutd_sessions_started_total{origin="api"}', 3)
    prometheus.wait_value("logoutd_create_session_seconds_count", 3)

    # What an administrator types, and what the real server answers (kept for the report).
    shown = subprocess.run([str(PROMTOOL), "query", "instant", prometheus.url, "logoutd_sessions"],
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert f'logoutd_sessions{{instance="127.0.0.1:{metrics_port}", job="logoutd", ' \
           'state="active"} => 3' in shown.stdout, shown.stdout
    sys.stdout.write(f"$ promtool query instant {prometheus.url} logoutd_sessions\n{shown.stdout}")

    checked = subprocess.run([str(PROMTOOL), "check", "metrics"], input=scrape(metrics_port),
                             capture_output=True, timeout=30)
    assert checked.returncode == 0, (checked.stdout + checked.stderr).decode()
    # Figures for the docs, not asserted: a scrape of the real daemon, and create_session.
    took = []
    for _ in range(20):
        started = time.monotonic()
        scrape(metrics_port)
        took.append(time.monotonic() - started)
    latency = prometheus.value("logoutd_create_session_seconds_sum") or 0.0
    sys.stdout.write(f"scrape median {statistics.median(took) * 1000:.1f} ms; create_session "
                     f"mean {latency / 3 * 1000:.1f} ms over 3 ssh logins\n")

    for login in logins:
        assert login.logout() == 0, login.report()
    prometheus.wait_value('logoutd_sessions{state="active"}', 0)
    prometheus.wait_value('logoutd_sessions{state="closing"}', 0)
    prometheus.wait_value('sum(logoutd_sessions_stopped_total{action="kill"})', 3)
    prometheus.wait_value('logoutd_stop_signalled_processes_total{owner="session"}', 3)  # the nohups


def test_the_contrib_alert_is_pending_after_real_leftovers(env: Env, pam, user,  # type: ignore[no-untyped-def]
                                                          metrics_port: int) -> None:
    """Permissive mode on real ssh logins; the real server evaluates contrib's alert rule."""
    daemon = env.daemon("[Login]\nKillUserProcesses=permissive\n", start=False)
    daemon.extra_args = ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    daemon.start(timeout=20)
    prometheus = Prometheus(env, f"127.0.0.1:{metrics_port}", rules=RULES)
    prometheus.wait_value('logoutd_kill_user_processes{mode="permissive"}', 1)
    alert = 'ALERTS{alertname="LogoutdLeftoversRising", program="sleep"}'
    # A program's series appears at its first count, which increase() does not see: one
    # logout leaves one sleep first, the next leaves six.
    for jobs, total in ((1, 1), (6, 7)):
        extra = "; ".join(f'nohup sleep 100{k} >/dev/null 2>&1 </dev/null & _p=$!; _comm $_p sleep; '
                          f'echo "PID job{k} $_p"' for k in range(jobs))
        login = env.login("ssh", pam, user, script(extra=extra))
        env.track(login.wait_ready().values())
        assert login.logout() == 0, login.report()
        prometheus.wait_value('logoutd_leftovers_total{program="sleep"}', total)
        if jobs == 1:
            assert prometheus.query(alert) == []
    prometheus.wait_value('sum(logoutd_sessions_stopped_total{action="record"})', 2)
    found = wait_for(lambda: prometheus.query(alert), 60, "the alert to be pending",
                     interval=0.25, details=prometheus.log_text)
    assert [a["metric"]["alertstate"] for a in found] == ["pending"], found  # for: 10m
    assert found[0]["metric"]["instance"] == f"127.0.0.1:{metrics_port}", found


def _run(daemon: Daemon, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(src_dir()))
    env.pop("LOGOUTD_CRASH_AT", None)
    return subprocess.run([*daemon.argv(), *extra], env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=60)


def test_a_port_in_use_stops_the_start_in_one_line(env: Env) -> None:
    daemon = env.daemon(start=False)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        before = sorted(os.listdir(daemon.runtime_dir))
        refused = _run(daemon, "--metrics-listen", f"127.0.0.1:{port}")
    assert refused.returncode == 1, refused
    assert refused.stderr == (f"logoutd: --metrics-listen 127.0.0.1:{port}: address already in use "
                              "(another program listens there); logoutd did not start.\n")
    after = sorted(os.listdir(daemon.runtime_dir))
    assert set(after) - set(before) <= {"logoutd.lock"}, after  # the lock is taken first
    assert not daemon.socket.exists() and not daemon.root_socket.exists()


@pytest.mark.parametrize(("value", "line"), [
    ("0.0.0.0:9101", "0.0.0.0 is not a loopback address"),
    ("127.0.0.1:99999", "port '99999' is not a number from 1 to 65535"),
])
def test_a_bad_address_is_refused_before_anything(env: Env, value: str, line: str) -> None:
    daemon = env.daemon(start=False)
    before = sorted(os.listdir(daemon.runtime_dir))
    refused = _run(daemon, "--metrics-listen", value)
    assert refused.returncode == 2, refused
    assert refused.stderr.count("\n") == 1 and refused.stderr.startswith(
        f"logoutd: --metrics-listen {value}: "), refused.stderr
    assert line in refused.stderr
    assert sorted(os.listdir(daemon.runtime_dir)) == before


def _imported(log: str) -> set[str]:
    """The modules `-X importtime` (PYTHONPROFILEIMPORTTIME) listed in a log."""
    return {line.rsplit("|", 1)[1].strip() for line in log.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


def test_prometheus_client_is_imported_only_with_the_option(env: Env, metrics_port: int) -> None:
    """Python's -X importtime lists every module the real daemon imports, lazily ones too."""
    daemon = env.daemon(start=False)
    daemon.start(env={"PYTHONPROFILEIMPORTTIME": "1"}, timeout=20)
    daemon.call("status")
    daemon.stop()
    without = daemon.log()
    assert "logoutd.daemon.runtime" in _imported(without)  # the import list is there
    assert not {m for m in _imported(without)
                if m.split(".")[0] == "prometheus_client" or m == "logoutd.daemon.metrics"}

    daemon.extra_args = ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    daemon.start(env={"PYTHONPROFILEIMPORTTIME": "1"}, timeout=20)
    assert b"logoutd_sessions" in scrape(metrics_port)
    daemon.stop()
    with_option = _imported(daemon.log()[len(without):])
    assert {"prometheus_client", "logoutd.daemon.metrics"} <= with_option
