"""`--metrics-listen`: the daemon's Prometheus metrics. The only module that imports
prometheus_client (the optional extra logoutd[metrics]); the daemon imports it only with the option.

Counters are kept here, told by the core through its `Metrics` port; the live gauges (sessions
and users by state, the configuration's warnings) are read from the manager at scrape time.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from logoutd import __version__
from logoutd.config.model import KillMode
from logoutd.core.manager import Manager
from logoutd.core.sessions import SessionState, StopCause
from logoutd.core.stopround import KINDS
from logoutd.core.users import UserState
from logoutd.daemon.metricsserver import MetricsServer

if TYPE_CHECKING:
    from logoutd.daemon.runtime import ConfigHealth

PROGRAMS_MAX = 20  # program names with a leftovers series of their own; the rest are "other"
OTHER = "other"
ACTIONS = ("kill", "wait", "record")  # StopAction's values
ORIGINS = ("api", "hook")
KEEP_SOURCES = ("unit", "autokeep")
# The classic text format, which every Prometheus reads; generate_latest writes it (newer
# prometheus_client versions label their CONTENT_TYPE_LATEST 1.0.0, for UTF-8 metric names).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# create_session: a cgroup mkdir, a move, two atomic state writes; seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ProgramLabels:
    """Bounded label values for program names: the first PROGRAMS_MAX distinct names seen
    since the start keep a series of their own, every later one counts as "other" (a counter's
    series cannot move, so a name that becomes frequent later stays under "other")."""

    def __init__(self, limit: int = PROGRAMS_MAX) -> None:
        self._limit = limit
        self._names: set[str] = set()

    def label(self, program: str) -> str:
        if program in self._names:
            return program
        if len(self._names) < self._limit and program != OTHER:
            self._names.add(program)
            return program
        return OTHER


class Histogram:
    """Cumulative buckets, a sum and a count, as Prometheus' histograms."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last one: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        index = next((i for i, bound in enumerate(self.bounds) if value <= bound), len(self.bounds))
        self.counts[index] += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        total, rows = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += count
            rows.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return rows


class DaemonMetrics(Collector):
    """The core's `Metrics` port, and the collector that exposes it with the manager's gauges."""

    def __init__(self, sock: socket.socket) -> None:
        self.started: Counter[str] = Counter({origin: 0 for origin in ORIGINS})
        self.stopped: Counter[tuple[str, str]] = Counter(
            {(str(cause), action): 0 for cause in StopCause for action in ACTIONS})
        self.signalled: Counter[str] = Counter({kind: 0 for kind in KINDS})
        self.timeouts: Counter[str] = Counter({kind: 0 for kind in KINDS})
        self.sigkilled: Counter[str] = Counter({kind: 0 for kind in KINDS})
        self.leftovers: Counter[str] = Counter({OTHER: 0})
        self.keep: Counter[tuple[str, str]] = Counter(
            {(source, result): 0 for source in KEEP_SOURCES for result in ("allowed", "denied")})
        self.create_latency = Histogram(LATENCY_BUCKETS)
        self._programs = ProgramLabels()
        self._manager: Manager | None = None
        self._config: Callable[[], ConfigHealth] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        ProcessCollector(registry=self.registry)  # memory, fds (one pidfd per leader), CPU
        self.server = MetricsServer(sock, self.render)

    def watch(self, manager: Manager, config: Callable[[], ConfigHealth]) -> None:
        """Read the live gauges from `manager` and the configuration's state at each scrape."""
        self._manager = manager
        self._config = config

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE

    # -- the core's Metrics port ---------------------------------------------------------

    def session_new(self, origin: str) -> None:
        self.started[origin] += 1

    def session_stopped(self, cause: str, action: str) -> None:
        self.stopped[(cause, action)] += 1

    def processes_signalled(self, owner: str, count: int) -> None:
        self.signalled[owner] += count

    def stop_timed_out(self, owner: str, killed: int) -> None:
        self.timeouts[owner] += 1
        self.sigkilled[owner] += killed

    def leftovers_recorded(self, programs: Sequence[str]) -> None:
        for program in programs:
            self.leftovers[self._programs.label(program)] += 1

    def keep_requested(self, source: str, allowed: bool) -> None:
        self.keep[(source, "allowed" if allowed else "denied")] += 1

    def session_create_seconds(self, seconds: float) -> None:
        self.create_latency.observe(seconds)

    # -- the collector -------------------------------------------------------------------

    def collect(self) -> Iterable[Metric]:
        yield from self._live()
        yield _counter("logoutd_sessions_started", "Sessions started, by origin: api "
                       "(create_session) or hook (adopted from the PAM hook's fail-safe record).",
                       ["origin"], self.started)
        yield _counter("logoutd_sessions_stopped", "Sessions stopped, by cause and by what "
                       "happened to their processes (kill, wait: abandoned, record: permissive).",
                       ["cause", "action"], self.stopped)
        yield _counter("logoutd_stop_signalled_processes", "Processes signalled by stop rounds "
                       "(SIGTERM and SIGCONT, and SIGHUP for sessions), by owner.",
                       ["owner"], self.signalled)
        yield _counter("logoutd_stop_timeouts", "Stop rounds whose deadline (SessionStopTimeoutSec= "
                       "or UserStopTimeoutSec=) found processes left and killed them.",
                       ["owner"], self.timeouts)
        yield _counter("logoutd_stop_sigkilled_processes", "Processes killed (cgroup.kill) at a "
                       "stop round's deadline, by owner.",
                       ["owner"], self.sigkilled)
        yield _counter("logoutd_leftovers", "Processes left behind at logout and recorded in "
                       f"permissive mode, by program (comm; the first {PROGRAMS_MAX} names seen "
                       "have their own series, the rest are 'other').",
                       ["program"], self.leftovers)
        yield _counter("logoutd_keep_requests", "Requests to keep processes after logout, by "
                       "source (unit: start_scope/start_unit, autokeep: AutoKeep=) and result.",
                       ["source", "result"], self.keep)
        latency = HistogramMetricFamily("logoutd_create_session_seconds", "Time to answer a "
                                        "create_session that started a new session.")
        latency.add_metric([], self.create_latency.buckets(), self.create_latency.sum)
        yield latency

    def _live(self) -> Iterable[Metric]:
        manager = self._manager
        if manager is not None:
            sessions = Counter(s.state for s in manager.sessions.values())
            yield _gauge("logoutd_sessions", "Sessions now, by state.", ["state"],
                         (((str(state),), sessions[state]) for state in SessionState))
            users = Counter(u.state for u in manager.users.values() if not u.finalized)
            yield _gauge("logoutd_users", "Users with sessions or linger now, by state.", ["state"],
                         (((str(state),), users[state]) for state in UserState))
            mode = manager.config.kill_user_processes
            yield _gauge("logoutd_kill_user_processes", "The KillUserProcesses= in effect (1).",
                         ["mode"], (((str(m),), float(m is mode)) for m in KillMode))
        if self._config is not None:
            health = self._config()
            yield _gauge("logoutd_config_warnings", "Warnings of the last configuration load or "
                         "reload.", [], [((), health.warnings)])
            yield _gauge("logoutd_config_ignored_lines", "Lines the last configuration load or "
                         "reload ignored.", [], [((), health.ignored)])
            yield _gauge("logoutd_config_last_reload_successful", "Whether the last configuration "
                         "load or reload read every file to its end (1) or kept the previous "
                         "configuration (0).", [], [((), float(health.loaded))])
        yield _gauge("logoutd_build_info", "logoutd's version (1).", ["version"],
                     [((__version__,), 1.0)])


def _counter(name: str, doc: str, labels: list[str],
             values: Mapping[str, int] | Mapping[tuple[str, str], int]) -> CounterMetricFamily:
    """A counter family from a Counter keyed by its label value (or tuple of values)."""
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric([key] if isinstance(key, str) else list(key), value)
    return family


def _gauge(name: str, doc: str, labels: list[str],
           values: Iterable[tuple[tuple[str, ...], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in values:
        family.add_metric(list(key), value)
    return family
