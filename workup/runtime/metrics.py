"""One worker instance's Prometheus metrics: commands handled (by command and reply status) and
their latency, deliveries dropped past their deadline, and the instance's state read at scrape
time (frozen, max threads, prefetch, in flight, the database pool, enabled commands).

``workup worker --metrics-port P`` serves the supervisor's own metrics (:class:`SupervisorMetrics`:
processes wanted and running, restarts) on ``P`` and gives child *i* a listener on ``P + 1 + i``
(:func:`child_settings`); without it (the default, and in tests) nothing listens and only the
counting happens.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator

import msgspec
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..metrics import BUCKETS, bounded, exposition, new_registry, serve_metrics
from ..settings import Settings
from .control import InstanceStatus

__all__ = ["InstanceMetrics", "SupervisorMetrics", "child_settings", "UNKNOWN_COMMAND"]

log = logging.getLogger("workup.runtime")

UNKNOWN_COMMAND = "<unknown>"   # the label of every command name the service does not have


def child_settings(settings: Settings, index: int) -> Settings:
    """The settings of the supervisor's child ``index``: its own metrics port after the
    supervisor's (none stays none)."""
    if not settings.metrics_port:
        return settings
    return msgspec.structs.replace(settings, metrics_port=min(settings.metrics_port + 1 + index, 65535))


class _State(Collector):
    """The instance's state as gauges, read from its status when scraped. The scrape runs on the
    listener's thread: the status is a handful of attribute reads, consistent enough for a gauge."""

    def __init__(self, status: Callable[[], InstanceStatus]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        s = self.status()
        gauges: list[tuple[str, str, float | None]] = [
            ("workup_instance_frozen", "1 while the instance is frozen (not consuming).", float(s.frozen)),
            ("workup_instance_max_threads", "Commands handled at once (set-max-threads).", s.max_threads),
            ("workup_instance_prefetch", "Deliveries the broker may send ahead (0 while frozen).", s.prefetch),
            ("workup_instance_in_flight", "Commands being handled now.", s.in_flight),
            ("workup_instance_db_pool_size", "Database connections in the pool (set-max-db-connections).",
             s.db_pool_size),
            ("workup_instance_enabled_commands", "Commands enabled on this instance.", len(s.enabled)),
            ("workup_instance_uptime_seconds", "Seconds since the instance started.", s.uptime),
        ]
        yield from _gauges(s.service, gauges)


def _gauges(service: str, rows: list[tuple[str, str, float | None]]) -> Iterator[Metric]:
    """One gauge labelled ``service`` per row (name, help, value); a row without a value has none
    (a service without a resizable pool has no pool gauge)."""
    for name, doc, value in rows:
        if value is not None:
            family = GaugeMetricFamily(name, doc, labels=("service",))
            family.add_metric((service,), float(value))
            yield family


class InstanceMetrics:
    """Counted by the instance's work loop; ``known`` tells a command of the service from a name a
    caller made up (which would otherwise grow the series without bound)."""

    def __init__(self, service: str, status: Callable[[], InstanceStatus], known: Callable[[str], bool]) -> None:
        self.service, self.known = service, known
        self.registry = new_registry("worker")
        self._commands = Counter("workup_commands", "Commands handled, by command and reply status.",
                                 ("service", "command", "status"), registry=self.registry)
        self._latency = Histogram("workup_command_duration_seconds", "Command handling latency.",
                                  ("service", "command"), buckets=BUCKETS, registry=self.registry)
        self._expired = Counter("workup_commands_expired", "Deliveries dropped: their deadline had passed.",
                                ("service",), registry=self.registry)
        self.registry.register(_State(status))
        # the labelled children, looked up once: ``labels()`` takes a lock and builds tuples on
        # every call. Keyed after ``bounded``, so the keys are as few as the series.
        self._series: dict[tuple[str, int], tuple[Counter, Histogram]] = {}

    def observe(self, command: str, status: int, seconds: float) -> None:
        name = bounded(command, self.known, UNKNOWN_COMMAND)
        series = self._series.get((name, status))
        if series is None:
            series = self._series[(name, status)] = (self._commands.labels(self.service, name, str(status)),
                                                     self._latency.labels(self.service, name))
        series[0].inc()
        series[1].observe(seconds)
        # one line per command at DEBUG, logged in the handling task: it names the request id
        log.debug("%s: %s answered %d in %.1f ms", self.service, name, status, seconds * 1000)

    def expired(self) -> None:
        self._expired.labels(self.service).inc()

    def render(self) -> bytes:
        return exposition(self.registry)

    def listen(self, host: str, port: int) -> int | None:
        return _listen(self.registry, self.service, host, port)


class SupervisorMetrics:
    """A supervisor's own: the processes it is asked for and has running, its children's restarts
    (``restarts`` reads them when scraped), and its process metrics."""

    def __init__(self, status: Callable[[], InstanceStatus], restarts: Callable[[], int]) -> None:
        self.service = status().service
        self.registry = new_registry("supervisor")
        self.registry.register(_Supervised(status, restarts))

    def render(self) -> bytes:
        return exposition(self.registry)

    def listen(self, host: str, port: int) -> int | None:
        return _listen(self.registry, f"{self.service} supervisor", host, port)


class _Supervised(Collector):
    def __init__(self, status: Callable[[], InstanceStatus], restarts: Callable[[], int]) -> None:
        self.status, self.restarts = status, restarts

    def collect(self) -> Iterator[Metric]:
        s = self.status()
        yield from _gauges(s.service, [
            ("workup_supervisor_processes", "Worker processes asked for (set-processes).", s.processes or 0),
            ("workup_supervisor_processes_running", "Worker processes running now.", len(s.children))])
        restarts = CounterMetricFamily("workup_supervisor_restarts", "Restarts of the current children after a crash.",
                                       labels=("service",))
        restarts.add_metric((s.service,), float(self.restarts()))
        yield restarts


def _listen(registry: CollectorRegistry, who: str, host: str, port: int) -> int | None:
    """Serve ``/metrics`` on ``host:port``; a port already taken is logged, not fatal (the work
    matters more than its metrics)."""
    try:
        bound = serve_metrics(registry, host, port)
    except OSError as exc:
        log.warning("%s: no metrics listener on %s:%d: %s", who, host, port, exc.strerror)
        return None
    log.info("%s: metrics on http://%s:%d/metrics", who, host, bound)
    return bound
