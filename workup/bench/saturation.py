"""``--rate`` stepping: the rates to try and the decision, for each step, whether the system kept
up. Pure functions; ``workup/bench/runner.py`` runs the steps.

A step is *sustained* when it had no error, its p99 (from the intended start, so queueing
counts) is within the bound, and it completed at least ``keep_up`` of the offered rate (a system
that falls behind builds a queue the window hides when its latency is measured alone). The
saturation rate is the highest sustained rate below the first step that was not: the steps stop
there, since every higher rate only queues more.
"""

from __future__ import annotations

import math

from .report import RateStep

__all__ = ["parse_rate", "rate_steps", "sustained", "saturation_rate"]


def parse_rate(spec: str) -> tuple[float, float | None]:
    """``"20"`` → ``(20, None)`` (one rate); ``"2..64"`` → ``(2, 64)`` (step from 2 up to 64)."""
    low, sep, high = spec.partition("..")
    try:
        start = float(low)
        stop = float(high) if sep else None
    except ValueError:
        raise ValueError(f"--rate: expected a number or FROM..TO, got {spec!r}") from None
    if not start > 0 or (stop is not None and not stop >= start) or not math.isfinite(start):
        raise ValueError(f"--rate: need 0 < FROM <= TO, got {spec!r}")
    return start, stop


def rate_steps(start: float, stop: float, factor: float) -> list[float]:
    """``start``, ``start*factor``, … while not above ``stop``; ``stop`` itself is the last step
    when the series overshoots it (so the top of the range is always tried)."""
    if factor <= 1:
        raise ValueError("the rate factor must be above 1")
    rates, rate = [], start
    while rate < stop * (1 - 1e-9):
        rates.append(round(rate, 3))
        rate *= factor
    rates.append(round(stop, 3))
    return rates


def sustained(*, offered: float, achieved: float, errors: int, p99_ms: float | None,
              p99_bound_ms: float, keep_up: float = 0.9) -> bool:
    return (errors == 0 and p99_ms is not None and p99_ms <= p99_bound_ms
            and achieved >= keep_up * offered)


def saturation_rate(steps: list[RateStep]) -> float | None:
    """The offered rate of the last sustained step before the first unsustained one."""
    best = None
    for step in steps:
        if not step.sustained:
            break
        best = step.offered
    return best
