"""Prometheus metrics, by hand: request counts and latency histograms per route template and
status, RPC latency per service and outcome. Text exposition format 0.0.4."""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Iterable, Mapping

__all__ = ["Metrics", "Histogram", "BUCKETS", "CONTENT_TYPE"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    __slots__ = ("counts", "total", "count")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # last: +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def _histogram_lines(name: str, names: tuple[str, ...], series: Mapping[Any, Histogram]) -> Iterable[str]:
    for values, h in sorted(series.items()):
        cumulative = 0
        for bound, n in zip(BUCKETS, h.counts):
            cumulative += n
            le = 'le="%s"' % bound
            yield f"{name}_bucket{_labels(names, values, le)} {cumulative}"
        inf = 'le="+Inf"'
        yield f"{name}_bucket{_labels(names, values, inf)} {h.count}"
        yield f"{name}_sum{_labels(names, values)} {h.total!r}"
        yield f"{name}_count{_labels(names, values)} {h.count}"


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    _REQ = ("method", "route", "status")
    _RPC = ("service", "outcome")

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], Histogram] = {}
        self.rpcs: dict[tuple[str, str], Histogram] = {}
        self.websockets = 0

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # label values come from fixed sets only (methods, route templates, statuses): a client
        # cannot grow the series by inventing methods or paths
        key = (method if method in _METHODS else "OTHER", route, str(status))
        h = self.requests.get(key)
        if h is None:
            h = self.requests[key] = Histogram()
        h.observe(seconds)

    def observe_rpc(self, service: str, outcome: str, seconds: float) -> None:
        key = (service, outcome)
        h = self.rpcs.get(key)
        if h is None:
            h = self.rpcs[key] = Histogram()
        h.observe(seconds)

    def render(self) -> str:
        lines = [
            "# HELP workup_http_requests_total HTTP requests by method, route template and status.",
            "# TYPE workup_http_requests_total counter",
        ]
        for values, h in sorted(self.requests.items()):
            lines.append(f"workup_http_requests_total{_labels(self._REQ, values)} {h.count}")
        lines += [
            "# HELP workup_http_request_duration_seconds HTTP request latency.",
            "# TYPE workup_http_request_duration_seconds histogram",
        ]
        lines += _histogram_lines("workup_http_request_duration_seconds", self._REQ, self.requests)
        lines += [
            "# HELP workup_rpc_duration_seconds Gateway-to-service RPC latency by service and outcome.",
            "# TYPE workup_rpc_duration_seconds histogram",
        ]
        lines += _histogram_lines("workup_rpc_duration_seconds", self._RPC, self.rpcs)
        lines += [
            "# HELP workup_websocket_connections Open notification WebSockets.",
            "# TYPE workup_websocket_connections gauge",
            f"workup_websocket_connections {self.websockets}",
        ]
        return "\n".join(lines) + "\n"
