"""The gateway's Prometheus metrics: the HTTP server's (requests by route template and status, their
latency, in flight; ``workup/metrics.py``), RPC latency per service and outcome, and open
notification WebSockets. The standard process metrics and build info come with the registry.

The RPC histogram's labelled children are looked up once per (service, outcome) and kept, as
``HttpMetrics`` keeps its own (prometheus_client's ``labels`` validates and locks on every call)."""

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
        self._rpc_children: dict[tuple[str, str], Histogram] = {}

    def observe_rpc(self, service: str, outcome: str, seconds: float) -> None:
        child = self._rpc_children.get((service, outcome))
        if child is None:
            child = self._rpc_children[(service, outcome)] = self._rpcs.labels(service, outcome)
        child.observe(seconds)
