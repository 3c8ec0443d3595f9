"""``--rate`` stepping: parsing, the series of rates, the sustained decision, the saturation rate."""

from __future__ import annotations

import pytest

from workup.bench.report import RateStep
from workup.bench.runner import achieved_rate, topologies
from workup.bench.saturation import parse_rate, rate_steps, saturation_rate, sustained

from ._reports import make_report


@pytest.mark.parametrize("spec, expected", [
    ("20", (20, None)), ("2.5", (2.5, None)), ("2..64", (2, 64)), ("5..5", (5, 5)),
])
def test_parse_rate(spec: str, expected: tuple[float, float | None]) -> None:
    assert parse_rate(spec) == expected


@pytest.mark.parametrize("spec", ["", "x", "0", "-3", "8..2", "2..", "..8", "nan", "inf", "1..x"])
def test_parse_rate_refuses(spec: str) -> None:
    with pytest.raises(ValueError, match="--rate"):
        parse_rate(spec)


@pytest.mark.parametrize("start, stop, factor, expected", [
    (2, 64, 2, [2, 4, 8, 16, 32, 64]),
    (2, 50, 2, [2, 4, 8, 16, 32, 50]),        # the top of the range is always tried
    (10, 20, 1.5, [10, 15, 20]),
    (5, 5, 2, [5]),
    (1, 2, 1.25, [1, 1.25, 1.562, 1.953, 2]),
])
def test_rate_steps(start: float, stop: float, factor: float, expected: list[float]) -> None:
    assert rate_steps(start, stop, factor) == pytest.approx(expected, abs=1e-3)


def test_rate_steps_needs_a_factor_above_one() -> None:
    with pytest.raises(ValueError):
        rate_steps(1, 10, 1)


@pytest.mark.parametrize("achieved, errors, p99, ok", [
    (10, 0, 100, True),
    (9, 0, 100, True),           # 90 % of the offered rate keeps up
    (8.9, 0, 100, False),        # falling behind
    (10, 1, 100, False),         # any error
    (10, 0, 500, True),          # at the bound
    (10, 0, 500.1, False),       # over the bound
    (10, 0, None, False),        # nothing completed
])
def test_sustained(achieved: float, errors: int, p99: float | None, ok: bool) -> None:
    assert sustained(offered=10, achieved=achieved, errors=errors, p99_ms=p99, p99_bound_ms=500) is ok


def _step(offered: float, ok: bool) -> RateStep:
    return RateStep(offered=offered, achieved=offered, errors=0, p50_ms=1, p99_ms=2, sustained=ok)


@pytest.mark.parametrize("pattern, expected", [
    ([(2, True), (4, True), (8, False)], 4),
    ([(2, True), (4, True), (8, True)], 8),       # the range never saturated it
    ([(2, False), (4, True)], None),              # saturated at the first step
    ([(2, True), (4, False), (8, True)], 2),      # a lucky step after the first failure counts not
    ([], None),
])
def test_saturation_rate(pattern: list[tuple[float, bool]], expected: float | None) -> None:
    assert saturation_rate([_step(r, ok) for r, ok in pattern]) == expected


@pytest.mark.parametrize("gateways, workers, points", [
    (None, None, [(1, 1)]),
    ("2", None, [(2, 1)]),
    (None, "1,2", [(1, 1), (1, 2)]),
    ("1,2", "1,2", [(1, 1), (1, 2), (2, 1), (2, 2)]),
])
def test_topologies(gateways: str | None, workers: str | None, points: list[tuple[int, int]]) -> None:
    assert topologies(gateways, workers) == points


@pytest.mark.parametrize("spec", ["", "0", "x", "1,,65", "-1"])
def test_topologies_refuses(spec: str) -> None:
    with pytest.raises(ValueError, match="--workers"):
        topologies(None, spec)


def test_achieved_rate_counts_the_scheduled_seconds_only() -> None:
    report = make_report(units=100, seconds=10.0)           # 10 units in each of seconds 0..9
    assert achieved_rate(report, 10) == 10
    assert achieved_rate(report, 5) == 10
    assert achieved_rate(report, 5.9) == 10                 # whole seconds
    report.timeline[9].units = 0                            # the last second's units came after the window
    assert achieved_rate(report, 10) == 9
    report.timeline[0].unit_errors = 10
    assert achieved_rate(report, 10) == 8
