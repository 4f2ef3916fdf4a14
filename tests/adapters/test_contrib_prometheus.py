"""contrib/prometheus: the alert rules parse (`promtool check rules`) and fire as their own unit
test says (`promtool test rules`), with the metric names the daemon really exports."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "prometheus"
RULES = CONTRIB / "logoutd-alerts.yml"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None,
                                    reason="promtool not installed (Debian package prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, cwd=CONTRIB)


@needs_promtool
def test_the_rules_parse() -> None:
    done = promtool("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rules found" in done.stdout


@needs_promtool
def test_the_alert_fires_as_its_unit_test_says() -> None:
    done = promtool("test", "rules", "logoutd-alerts.test.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_name_metrics_the_daemon_exports() -> None:
    pytest.importorskip("prometheus_client", reason="prometheus_client not installed (logoutd[metrics])")
    from logoutd.daemon.metrics import DaemonMetrics
    from logoutd.daemon.runtime import ConfigHealth
    from tests.unit.conftest import make_core

    with socket.socket() as sock:
        metrics = DaemonMetrics(sock)
        metrics.watch(make_core().manager, lambda: ConfigHealth(0, 0, True))
        exported = metrics.render()[0].decode()
    named = set(re.findall(r"\blogoutd_[a-z_]+", RULES.read_text()))
    assert named and all(f"\n{name}" in exported for name in named), named
