"""``workup bench compare``: the ratio of every row, which rows count as worse, the exit code;
and the report files it reads (written by ``report.write``, read back by ``report.load``)."""

from __future__ import annotations

import math
from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from workup.bench import report as R
from workup.bench.compare import Row, command, exit_code, is_worse, render, rows

from ._reports import make_report


def _row(metric: str, a: float | None, b: float | None, higher: bool) -> Row:
    return Row(metric=metric, a=a, b=b, higher_is_better=higher, gated=True)


@pytest.mark.parametrize("a, b, higher, tolerance, worse", [
    (100, 100, True, 0.1, False),
    (100, 91, True, 0.1, False),       # within 10 % lower throughput
    (100, 89, True, 0.1, True),
    (100, 150, True, 0.1, False),      # better
    (10, 10.9, False, 0.1, False),     # latency within 10 %
    (10, 11.1, False, 0.1, True),
    (10, 5, False, 0.1, False),
    (10, 12, False, 0.25, False),      # a looser tolerance
    (None, 5, False, 0.1, False),      # missing figures are not judged
    (10, None, False, 0.1, False),
    (0, 0, True, 0.1, False),
])
def test_is_worse(a: float | None, b: float | None, higher: bool, tolerance: float, worse: bool) -> None:
    assert is_worse(_row("x", a, b, higher), tolerance) is worse


@pytest.mark.parametrize("a, b, worse", [(0, 0, False), (0, 1, True), (4, 4, False), (10, 11, False), (10, 12, True)])
def test_failures_growing_from_zero_are_always_worse(a: float, b: float, worse: bool) -> None:
    assert is_worse(_row("failures", a, b, False), 0.1) is worse


def test_ratio() -> None:
    assert _row("x", 4, 2, True).ratio == 0.5
    assert _row("x", 0, 3, True).ratio == math.inf
    assert _row("x", 0, 0, True).ratio == 1.0
    assert _row("x", None, 3, True).ratio is None


def test_rows_and_exit_code() -> None:
    a = make_report()
    same = rows(a, make_report())
    assert {r.metric for r in same} >= {"flows/s", "flow p50 ms", "flow p99 ms", "failures", "login p50 ms"}
    assert exit_code(same, 0.1) == 0
    slower = rows(a, make_report(latency_ms=20))
    assert exit_code(slower, 0.1) == 1 and exit_code(slower, 1.5) == 0
    fewer = rows(a, make_report(units=80))
    assert exit_code(fewer, 0.1) == 1
    assert exit_code(rows(a, make_report(failed=1)), 0.1) == 1
    # a slower step alone is shown, gated only with --strict
    step = rows(a, make_report(step_ms=50))
    assert exit_code(step, 0.1) == 0 and exit_code(step, 0.1, strict=True) == 1
    assert "worse (not gated)" in render(step, 0.1) and "**worse**" in render(step, 0.1, strict=True)


def test_report_round_trip(tmp_path: Path) -> None:
    report = make_report()
    paths = R.write(report, tmp_path)
    assert {p.name for p in paths} == {"flow.json", "flow.md", "flow-timeline.png", "flow-steps.png"}
    back = R.load(tmp_path)                      # the directory holds one JSON
    assert msgspec.to_builtins(back) == msgspec.to_builtins(report)
    assert R.load(tmp_path / "flow.json").units_ok == 100


def test_compare_command(tmp_path: Path) -> None:
    R.write(make_report(), tmp_path / "a")
    R.write(make_report(latency_ms=30), tmp_path / "b")
    runner = CliRunner()
    same = runner.invoke(command, [str(tmp_path / "a"), str(tmp_path / "a")])
    assert same.exit_code == 0, same.output
    assert "| flows/s | 10.00 | 10.00 | 1.00 |" in same.output
    worse = runner.invoke(command, [str(tmp_path / "a"), str(tmp_path / "b")])
    assert worse.exit_code == 1 and "| flow p50 ms | 10.01 | 30.02 | 3.00 | **worse** |" in worse.output
    assert runner.invoke(command, [str(tmp_path / "a"), str(tmp_path / "b"), "--tolerance", "3"]).exit_code == 0
    (tmp_path / "bad.json").write_text("{}")
    bad = runner.invoke(command, [str(tmp_path / "a"), str(tmp_path / "bad.json")])
    assert bad.exit_code == 1 and "not a load-bench report" in bad.output
