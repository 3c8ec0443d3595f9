"""The gateway's Prometheus metrics: the HTTP server's (requests by route template and status, their
latency, in flight; ``workup/metrics.py``), RPC latency per service and outcome, and open
notification WebSockets. The standard process metrics and build info come with the registry."""

from __future__ import annotations

from prometheus_client import Gauge, Histogram

from ..metrics import BUCKETS, HttpMetrics

__all__ = ["Metrics"]


class Metrics(HttpMetrics):
    """One gateway's metrics, in a registry of its own (two gateways in one process do not mix)."""

    def __init__(self) -> None:
        super().__init__("gateway")
        self._rpcs = Histogram("workup_rpc_duration_seconds",
                               "Gateway-to-service RPC latency by service and outcome.",
                               ("service", "outcome"), buckets=BUCKETS, registry=self.registry)
        self.websockets = Gauge("workup_websocket_connections", "Open notification WebSockets.",
                                registry=self.registry)   # routes/_websocket.py keeps it

    def observe_rpc(self, service: str, outcome: str, seconds: float) -> None:
        self._rpcs.labels(service, outcome).observe(seconds)
