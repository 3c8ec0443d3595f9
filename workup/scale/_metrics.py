"""What the autoscaler tells Prometheus: every decision, per service, beside the log line.

``workup_scale_desired_replicas{service}`` is the count the last decision wanted (also in a dry
run), ``workup_scale_decisions_total{service,direction}`` counts decisions (``up``, ``down``,
``hold``), ``workup_scale_utilisation{service}`` is the CPU figure they were taken on, and
``workup_scale_unavailable_total{source}`` counts cycles held because a source could not be read.
Served by :func:`workup.metrics.serve_metrics` (``workup scale --metrics-port``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from ..metrics import exposition, new_registry, serve_metrics
from ._policy import Decision, Observation

__all__ = ["ScaleMetrics"]


class ScaleMetrics:
    def __init__(self) -> None:
        self.registry = new_registry("scale")
        self._desired = Gauge("workup_scale_desired_replicas", "Replicas the last decision wanted.",
                              ("service",), registry=self.registry)
        self._decisions = Counter("workup_scale_decisions", "Autoscaler decisions by direction (up, down, hold).",
                                  ("service", "direction"), registry=self.registry)
        self._utilisation = Gauge("workup_scale_utilisation", "CPU used / CPU the replicas may use, as observed.",
                                  ("service",), registry=self.registry)
        self._unavailable = Counter("workup_scale_unavailable", "Cycles held because a source could not be read.",
                                    ("source",), registry=self.registry)

    def decided(self, service: str, obs: Observation, decision: Decision) -> None:
        self._desired.labels(service).set(decision.replicas)
        self._decisions.labels(service, decision.direction).inc()
        if obs.utilisation is not None:
            self._utilisation.labels(service).set(obs.utilisation)

    def unavailable(self, source: str) -> None:
        self._unavailable.labels(source).inc()

    def listen(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` (0: any free port); the bound port."""
        return serve_metrics(self.registry, host, port)

    def render(self) -> bytes:
        return exposition(self.registry)
