"""``workup bench compare A B``: the ratio table of two load-bench reports (B over A) and an exit
code a script can gate on: 1 when B is worse than A beyond ``--tolerance`` on a gated row.

Gated rows are the headline figures: units per second (higher is better), unit p50 and p99
(lower is better) and failures (any in B where A had none). Per-step latencies and CPU per
request are shown for the reader, and gated too with ``--strict``: they are noisier on a shared
machine.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import msgspec

from .report import RunReport, load

__all__ = ["command", "Row", "rows", "is_worse", "exit_code", "render"]


class Row(msgspec.Struct, kw_only=True, frozen=True):
    metric: str
    a: float | None
    b: float | None
    higher_is_better: bool
    gated: bool                 # counts for the exit code without --strict

    @property
    def ratio(self) -> float | None:
        if self.a is None or self.b is None or math.isnan(self.a) or math.isnan(self.b):
            return None
        if self.a == 0:
            return 1.0 if self.b == 0 else math.inf
        return self.b / self.a


def is_worse(row: Row, tolerance: float) -> bool:
    """B worse than A beyond ``tolerance`` (0.1 = 10 %). A missing figure is never worse; a
    failure count that grows from zero always is."""
    ratio = row.ratio
    if ratio is None:
        return False
    if row.metric == "failures":
        return (row.b or 0) > (row.a or 0) * (1 + tolerance) if row.a else (row.b or 0) > 0
    if row.higher_is_better:
        return ratio < 1 - tolerance
    return ratio > 1 + tolerance


def rows(a: RunReport, b: RunReport) -> list[Row]:
    def fail(r: RunReport) -> float:
        return float(r.errors + sum(r.unit_errors.values()))

    out = [
        Row(metric=f"{a.unit}s/s", a=a.units_per_s, b=b.units_per_s, higher_is_better=True, gated=True),
        Row(metric=f"{a.unit} p50 ms", a=a.unit_latency.p50_ms, b=b.unit_latency.p50_ms, higher_is_better=False, gated=True),
        Row(metric=f"{a.unit} p99 ms", a=a.unit_latency.p99_ms, b=b.unit_latency.p99_ms, higher_is_better=False, gated=True),
        Row(metric="failures", a=fail(a), b=fail(b), higher_is_better=False, gated=True),
        Row(metric="requests/s", a=a.requests_per_s, b=b.requests_per_s, higher_is_better=True, gated=False),
        Row(metric="load generator CPU µs/request", a=a.cpu.loadgen_us_per_request,
            b=b.cpu.loadgen_us_per_request, higher_is_better=False, gated=False),
        Row(metric="system CPU µs/request", a=a.cpu.system_us_per_request, b=b.cpu.system_us_per_request,
            higher_is_better=False, gated=False),
    ]
    b_steps = {s.name: s for s in b.steps}
    for step in a.steps:
        other = b_steps.get(step.name)
        if other is None:
            continue
        out.append(Row(metric=f"{step.name} p50 ms", a=step.latency.p50_ms, b=other.latency.p50_ms,
                       higher_is_better=False, gated=False))
        out.append(Row(metric=f"{step.name} p99 ms", a=step.latency.p99_ms, b=other.latency.p99_ms,
                       higher_is_better=False, gated=False))
    return out


def exit_code(table: list[Row], tolerance: float, *, strict: bool = False) -> int:
    return int(any(is_worse(r, tolerance) for r in table if r.gated or strict))


def render(table: list[Row], tolerance: float, *, strict: bool = False) -> str:
    def num(v: float | None) -> str:
        if v is None or math.isnan(v):
            return "-"
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"

    lines = ["| metric | A | B | B/A | |", "|---|---:|---:|---:|---|"]
    for r in table:
        ratio = r.ratio
        verdict = "**worse**" if is_worse(r, tolerance) and (r.gated or strict) else \
            ("worse (not gated)" if is_worse(r, tolerance) else "")
        ratio_text = "-" if ratio is None else ("inf" if math.isinf(ratio) else f"{ratio:.2f}")
        lines.append(f"| {r.metric} | {num(r.a)} | {num(r.b)} | {ratio_text} | {verdict} |")
    return "\n".join(lines)


@click.command(name="compare")
@click.argument("a", type=click.Path(exists=True, path_type=Path))
@click.argument("b", type=click.Path(exists=True, path_type=Path))
@click.option("--tolerance", type=click.FloatRange(0, 10), default=0.10, show_default=True,
              help="how much worse B may be (0.1 = 10 %) before the exit code is 1")
@click.option("--strict", is_flag=True, help="gate on every row (per-step latencies, CPU per request) too")
def command(a: Path, b: Path, tolerance: float, strict: bool) -> None:
    """Compare two load-bench reports (a JSON file or its perf/results/<timestamp>/ directory)."""
    try:
        ra, rb = load(a), load(b)
    except (ValueError, msgspec.DecodeError) as exc:
        raise click.ClickException(f"not a load-bench report: {exc}") from None
    if (ra.name, ra.unit) != (rb.name, rb.unit):
        click.echo(f"note: comparing {ra.name} with {rb.name}", err=True)
    table = rows(ra, rb)
    click.echo(f"A: {a} ({ra.started_at}, {ra.environment.get('mode')}, commit {ra.environment.get('commit')})")
    click.echo(f"B: {b} ({rb.started_at}, {rb.environment.get('mode')}, commit {rb.environment.get('commit')})\n")
    click.echo(render(table, tolerance, strict=strict))
    code = exit_code(table, tolerance, strict=strict)
    if code:
        click.echo(f"\nB is worse than A beyond {tolerance:.0%}", err=True)
    raise SystemExit(code)
