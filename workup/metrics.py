"""What every role's Prometheus exposition shares: a registry of its own per server (several
gateways or instances may live in one process, as in tests and ``workup up``), the standard
``process_*``/``python_*`` collectors, ``workup_build_info``, the text exposition, and the small
listener a worker process serves it on.

The text is written by ``prometheus_client`` (``generate_latest``), not by hand: its escaping,
float formatting and ``# TYPE`` lines are what Prometheus and ``prometheus_client.parser`` expect.
"""

from __future__ import annotations

import platform
from typing import Awaitable, Callable, MutableMapping

from prometheus_client import (CollectorRegistry, Counter, GCCollector, Gauge, Histogram, Info,
                               PlatformCollector, ProcessCollector, generate_latest, start_http_server)

from . import __version__

__all__ = ["CONTENT_TYPE", "BUCKETS", "new_registry", "exposition", "serve_metrics", "bounded", "HttpMetrics", "CountInFlight"]

# what generate_latest writes by default; newer prometheus_client releases name 1.0.0 "latest",
# which the same text also satisfies, but the gateway has always said 0.0.4
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# request and command latencies: half a millisecond (a cache hit) to ten seconds (the deadline)
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def new_registry(role: str) -> CollectorRegistry:
    """A registry with the process, platform and GC collectors and ``workup_build_info{role,
    version, python}`` already in it."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Info("workup_build", "WorkUp version and role of this process.", registry=registry).info(
        {"role": role, "version": __version__, "python": platform.python_version()})
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus text format 0.0.4 (``CONTENT_TYPE``)."""
    return generate_latest(registry)


def bounded(value: str, allowed: Callable[[str], bool], other: str) -> str:
    """``value`` when ``allowed``, else ``other``: a label value a client can choose must come
    from a fixed set, or a client could grow the series without bound."""
    return value if allowed(value) else other


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> int:
    """Serve ``registry`` at ``http://host:port/metrics`` from a daemon thread (prometheus_client's
    own WSGI listener: a scrape never waits on the trio loop); returns the bound port."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return int(server.server_port)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """An HTTP server's metrics (the gateway's and the media server's), in a registry of its own:
    requests and their latency by method, route template and status, and requests in flight."""

    def __init__(self, role: str) -> None:
        self.registry = new_registry(role)
        labels = ("method", "route", "status")
        self._requests = Counter("workup_http_requests", "HTTP requests by method, route template and status.",
                                 labels, registry=self.registry)
        self._latency = Histogram("workup_http_request_duration_seconds", "HTTP request latency.",
                                  labels, buckets=BUCKETS, registry=self.registry)
        self.in_flight = Gauge("workup_http_requests_in_flight", "HTTP requests being answered now.",
                               registry=self.registry)
        # the labelled children, looked up once per label set (``labels`` validates and locks on
        # every call); bounded as the series themselves are
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # the route is a template or "<unmatched>", the status a number: only the method is the
        # client's to choose, so it is the one mapped onto a fixed set
        method = bounded(method, _METHODS.__contains__, "OTHER")
        children = self._children.get((method, route, status))
        if children is None:
            labels = (method, route, str(status))
            children = self._children[(method, route, status)] = (self._requests.labels(*labels),
                                                                  self._latency.labels(*labels))
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return exposition(self.registry)


Scope = MutableMapping[str, object]
Message = MutableMapping[str, object]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class CountInFlight:
    """ASGI wrapper that keeps ``HttpMetrics.in_flight``: around the whole app call, so a request
    cut off by its client (no after-request hook runs) is uncounted all the same."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app, self.gauge = app, metrics.in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.gauge.track_inprogress():
            await self.app(scope, receive, send)
