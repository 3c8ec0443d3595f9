"""The live progress line of a load bench: a tqdm bar over the run's seconds with the request
rate, the errors and p50/p99 of the last five seconds, and the units started. Off when stderr is
not a terminal (CI logs and pipes get the final summary only)."""

from __future__ import annotations

import sys
from typing import TextIO

from .loadgen import Stats

__all__ = ["Progress", "line"]


def line(stats: Stats, now: float, started: int, unit: str) -> str:
    """The text after the bar: ``req/s 812 | err 0 | p50 4.1 ms | p99 19 ms | flows 37``."""
    rate, errors, recent = stats.recent(now)
    p50, p99 = recent.percentile_ms(50), recent.percentile_ms(99)
    fmt = lambda v: "-" if v is None else f"{v:.3g} ms"  # noqa: E731
    return (f"req/s {rate:,.0f} | err {errors} (total {stats.errors}) | p50 {fmt(p50)} | p99 {fmt(p99)} "
            f"| {unit}s {started}")


class Progress:
    """``on_tick`` for the load generator; ``close()`` when the run ends."""

    def __init__(self, total_seconds: float, unit: str, *, stream: TextIO | None = None,
                 enabled: bool | None = None) -> None:
        stream = stream or sys.stderr
        self.enabled = stream.isatty() if enabled is None else enabled
        self.unit = unit
        self._bar = None
        self._origin: float | None = None
        if self.enabled:
            from tqdm import tqdm
            self._bar = tqdm(total=round(total_seconds), unit="s", file=stream, leave=True,
                             bar_format="{percentage:3.0f}%|{bar:20}| {n:.0f}/{total:.0f} s [{elapsed}<{remaining}] {desc}")

    def __call__(self, stats: Stats, now: float, started: int) -> None:
        if self._bar is None:
            return
        if self._origin is None:
            self._origin = now - 1.0
        total = self._bar.total if self._bar.total is not None else now - self._origin
        self._bar.n = min(total, now - self._origin)
        self._bar.set_description_str(line(stats, now, started, self.unit), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
