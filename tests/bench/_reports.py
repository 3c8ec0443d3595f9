"""Reports built from synthetic load-generator figures, for the tests of what reads reports."""

from __future__ import annotations

from workup.bench import report as R
from workup.bench.loadgen import Stats, Window


def make_report(*, units: int = 100, seconds: float = 10.0, latency_ms: float = 10.0, failed: int = 0,
                step_ms: float = 5.0, name: str = "flow") -> R.RunReport:
    stats = Stats(start=0.0)
    for i in range(units):
        now = i * seconds / units
        stats.request("login", step_ms / 1000, None, now)
        stats.unit(latency_ms / 1000, None, now)
    for _ in range(failed):
        stats.request("login", step_ms / 1000, "HTTP 500", 1.0)
        stats.unit(latency_ms / 1000, "login", 1.0)
    window = Window(seconds=seconds, cpu_seconds=0.01 * units, units_started=units + failed)
    return R.build(name, stats, window, loop="closed", users=4, rate=None, unit="flow", system_cpu_s=0.2 * units,
                   environment={"mode": "embedded", "commit": "abc"}, settings={})
