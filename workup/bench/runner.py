"""What ``workup bench flow`` and ``workup bench mix`` share: their options, the system under load
(embedded ``workup up`` started here, or ``--url``), the closed or open loop, ``--rate`` stepping,
the progress line, the report files and ``--check``.

A scenario gives a :class:`Scenario`: ``prepare`` (seeding, pre-registration: not measured),
``run`` (one unit) and ``targets`` (its own checks on the finished report).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import math
import shlex

import click
import msgspec
import trio

from . import report as R
from .loadgen import Bounds, Recorder, Stats, Window, closed_loop, open_loop
from .progress import Progress
from .saturation import parse_rate, rate_steps, saturation_rate, sustained
from .system import CpuSnapshot, System, attach, cpu_between, cpu_by_group, start_embedded, start_split

__all__ = ["Scenario", "LoadOptions", "load_options", "run_scenario", "measure_once", "common_checks", "topologies", "achieved_rate"]

F = TypeVar("F", bound=Callable[..., object])

# CPU per request of the load generator at most this share of the system's (issue 11's target)
LOADGEN_CPU_SHARE = 0.25
# RSS of every process flat within this share over a soak (issue 11)
RSS_GROWTH = 0.10


class Scenario(Protocol):
    name: str          # the report's name: flow, mix
    unit: str          # what one unit is: flow, request

    async def prepare(self, base_url: str, users: int) -> None: ...

    def run(self, user: int, rec: Recorder) -> Awaitable[None]: ...

    def targets(self, report: R.RunReport) -> list[R.Check]: ...

    def settings(self) -> dict[str, object]: ...

    async def aclose(self) -> None: ...


class LoadOptions(msgspec.Struct, kw_only=True):
    url: str | None
    users: int
    rate: str | None
    rate_factor: float
    p99_bound_ms: float
    duration: float
    warmup: float
    max_units: int | None
    max_in_flight: int
    out: str | None
    check: bool
    soak: float | None = None            # seconds at --soak-share of the saturation rate
    soak_share: float = 0.8
    gateways: str | None = None          # "2" or "1,2" (a scale curve)
    workers: str | None = None
    up_args: str = ""                    # more arguments for the `workup up` the bench starts


def load_options(*, users: int, duration: float, warmup: float, p99_bound_ms: float) -> Callable[[F], F]:
    """The options every load bench takes (the command gets them as keyword arguments)."""
    def decorate(f: F) -> F:
        options = [
            click.option("--url", default=None, help="load a system already running there "
                         "(default: start an embedded `workup up`; distributed when WORKUP_AMQP_URL etc. are set)"),
            click.option("--users", type=click.IntRange(1, 10_000), default=users, show_default=True,
                         help="virtual users (closed loop); with --rate, the pool of users units are given to"),
            click.option("--rate", default=None, help="open loop: units started per second (e.g. 20), or "
                         "FROM..TO to step up by --rate-factor until saturation (e.g. 2..64)"),
            click.option("--rate-factor", type=click.FloatRange(1.05, 10), default=1.5, show_default=True,
                         help="ratio between two --rate steps"),
            click.option("--p99-bound", "p99_bound_ms", type=click.FloatRange(0.1), default=p99_bound_ms,
                         show_default=True, help="a rate step with a higher p99 (ms) is not sustained"),
            click.option("--duration", type=click.FloatRange(0.5, 86_400), default=duration, show_default=True,
                         help="measured seconds (per step with FROM..TO)"),
            click.option("--warmup", type=click.FloatRange(0, 3600), default=warmup, show_default=True,
                         help="seconds run but not measured first"),
            click.option("--max-units", type=click.IntRange(1), default=None,
                         help="start at most this many units in all (flows, requests)"),
            click.option("--max-in-flight", type=click.IntRange(1, 100_000), default=1000, show_default=True,
                         help="open loop: units out at once at most (a unit waiting for a slot counts the wait)"),
            click.option("--out", type=click.Path(file_okay=False), default=None,
                         help="report directory (default perf/results/<UTC timestamp>/)"),
            click.option("--check", is_flag=True, help="exit 1 when a target of this bench is missed"),
            click.option("--soak", type=click.FloatRange(1, 86_400), default=None,
                         help="after --rate FROM..TO found the saturation rate, run this many seconds open loop at "
                              "--soak-share of it (RSS of every process is reported; the issue's soak: 600)"),
            click.option("--soak-share", type=click.FloatRange(0.05, 1), default=0.8, show_default=True,
                         help="share of the saturation rate the soak offers"),
            click.option("--up-args", default="", help="more arguments for the `workup up` the bench starts, "
                         "e.g. '--processes 0 --gateway-processes 1' (the one-process layout) to compare"),
            click.option("--gateways", default=None,
                         help="start the split topology instead of workup up: this many gateway processes; "
                              "a list (1,2) runs once per count and draws the scale curve (needs WORKUP_AMQP_URL)"),
            click.option("--workers", default=None,
                         help="split topology: worker processes per service; a list (1,2) draws the scale curve"),
        ]
        for option in reversed(options):
            f = option(f)
        return f
    return decorate


def common_checks(report: R.RunReport) -> list[R.Check]:
    """Every load bench's own targets: no failed unit, and a load generator far cheaper than
    the system (when the system's CPU is known, i.e. this bench started it); after a soak, the
    RSS of every process flat within 10 %."""
    failed = sum(report.unit_errors.values()) + report.errors
    checks = [R.Check(target="failed units and requests", value=failed, limit=0, met=failed == 0 and report.units_ok > 0)]
    share = report.cpu.loadgen_over_system
    if share is not None:
        checks.append(R.Check(target="load generator CPU / system CPU", value=share,
                              limit=LOADGEN_CPU_SHARE, met=share <= LOADGEN_CPU_SHARE))
    if report.soak:
        growth = [g for g in report.rss_growth().values() if g is not None]
        worst = max(growth, default=None)
        checks.append(R.Check(target="RSS growth of the worst process over the soak (last / first)", value=worst,
                              limit=1 + RSS_GROWTH, met=worst is not None and worst <= 1 + RSS_GROWTH))
    return checks


class _Measure:
    """One loop over the scenario with the system's CPU read at the window's edges."""

    def __init__(self, system: System, scenario: Scenario, opts: LoadOptions) -> None:
        self.system, self.scenario, self.opts = system, scenario, opts
        self._cpu: dict[str, dict[str, float]] = {}   # phase -> role -> CPU seconds so far
        self._groups: dict[str, CpuSnapshot] = {}   # phase -> every process's CPU seconds so far

        self.rss: dict[str, list[float | None]] = {}   # MiB of each system process, once a second

    def _mark(self, phase: str) -> None:
        self._cpu[phase] = self.system.cpu_seconds_by_role()
        self._groups[phase] = cpu_by_group(self.system)

    def _sample_rss(self, second: int) -> None:
        for name, rss in self.system.rss_by_process().items():
            samples = self.rss.setdefault(name, [])
            samples += [math.nan] * (second - len(samples)) + [round(rss / 2**20, 1)]

    def role_cpu(self) -> dict[str, float]:
        """CPU seconds of each role over the window (empty when we did not start the system)."""
        start, end = self._cpu.get("start", {}), self._cpu.get("end", {})
        return {role: end[role] - start.get(role, 0.0) for role in end}

    def group_cpu(self) -> dict[str, float]:
        """CPU seconds of each process group of the machine over the window."""
        start, end = self._groups.get("start"), self._groups.get("end")
        return cpu_between(start, end) if start is not None and end is not None else {}

    def system_cpu(self) -> float | None:
        by_role = self.role_cpu()
        return sum(by_role.values()) if by_role else None

    async def once(self, rate: float | None, duration: float) -> tuple[Stats, Window]:
        o = self.opts
        bounds = Bounds(duration=duration, warmup=o.warmup, max_units=o.max_units)
        progress = Progress(o.warmup + duration, self.scenario.unit)
        self.rss = {}

        def tick(stats: Stats, now: float, started: int) -> None:
            progress(stats, now, started)
            if now >= stats.start:
                self._sample_rss(int(now - stats.start))

        try:
            if rate is None:
                return await closed_loop(self.scenario.run, o.users, bounds, on_tick=tick, on_mark=self._mark)
            return await open_loop(self.scenario.run, rate, bounds, max_in_flight=o.max_in_flight,
                                   users=o.users, on_tick=tick, on_mark=self._mark)
        finally:
            progress.close()


def _report(m: _Measure, stats: Stats, window: Window, rate: float | None) -> R.RunReport:
    s, o = m.system, m.opts
    report = R.build(m.scenario.name, stats, window, loop="closed" if rate is None else "open",
                     users=o.users, rate=rate, unit=m.scenario.unit, system_cpu_s=m.system_cpu(), role_cpu_s=m.role_cpu(),
                     group_cpu_s=m.group_cpu(),
                     environment={**R.environment(s.mode, s.servers, s.base_url), "topology": s.topology},
                     settings={**msgspec.structs.asdict(o), **m.scenario.settings()})
    report.rss_mib = m.rss
    return report


async def _run(system: System, scenario: Scenario, opts: LoadOptions) -> R.RunReport:
    m = _Measure(system, scenario, opts)
    try:
        await scenario.prepare(system.base_url, opts.users)
        if opts.rate is None:
            return _report(m, *await m.once(None, opts.duration), None)
        start, stop = parse_rate(opts.rate)
        if stop is None:
            return _report(m, *await m.once(start, opts.duration), start)
        steps: list[R.RateStep] = []
        last: R.RunReport | None = None
        for rate in rate_steps(start, stop, opts.rate_factor):
            stats, window = await m.once(rate, opts.duration)
            last = _report(m, stats, window, rate)
            errors = last.errors + sum(last.unit_errors.values())
            achieved = achieved_rate(last, opts.duration)
            steps.append(R.RateStep(
                offered=rate, achieved=achieved, errors=errors, p50_ms=last.unit_latency.p50_ms,
                p99_ms=last.unit_latency.p99_ms,
                sustained=sustained(offered=rate, achieved=achieved, errors=errors,
                                    p99_ms=last.unit_latency.p99_ms, p99_bound_ms=opts.p99_bound_ms)))
            click.echo(f"rate {rate:g}/s: achieved {achieved:g}/s, {errors} errors, "
                       f"p99 {last.unit_latency.p99_ms} ms -> {'sustained' if steps[-1].sustained else 'saturated'}",
                       err=True)
            if not steps[-1].sustained:
                break
        assert last is not None
        found = saturation_rate(steps)
        if opts.soak and found:
            rate = round(found * opts.soak_share, 3)
            click.echo(f"soak: {opts.soak:g} s at {rate:g}/s ({opts.soak_share:.0%} of {found:g}/s)", err=True)
            last = _report(m, *await m.once(rate, opts.soak), rate)
            last.soak = True
        elif opts.soak:
            click.echo("soak skipped: no rate step was sustained", err=True)
        last.rate_steps, last.saturation_rate = steps, found
        return last
    finally:
        await scenario.aclose()


def measure_once(system: System, scenario: Scenario, opts: LoadOptions) -> R.RunReport:
    """One run (or one ``--rate`` stepping) against ``system``, its targets checked."""
    report = trio.run(_run, system, scenario, opts)
    report.checks = common_checks(report) + scenario.targets(report)
    return report


def run_scenario(scenario: Scenario, opts: LoadOptions) -> R.RunReport:
    """Start or attach to the system, run, write the report, print its summary; with
    ``--check``, exit 1 when a target is missed."""
    if opts.rate is not None:
        try:
            parse_rate(opts.rate)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--rate") from None
    try:
        if opts.url:
            report = measure_once(attach(opts.url), scenario, opts)
        elif opts.gateways or opts.workers:
            points = topologies(opts.gateways, opts.workers)
            last, curve = None, []
            for gateways, workers in points:
                click.echo(f"split topology: {gateways} gateway, {workers} worker processes per service", err=True)
                with start_split(gateways=gateways, workers=workers) as system:
                    last = measure_once(system, scenario, opts)
                curve.append(R.ScalePoint(gateways=gateways, workers=workers, units_per_s=last.units_per_s,
                                          p50_ms=last.unit_latency.p50_ms, p99_ms=last.unit_latency.p99_ms,
                                          errors=last.errors + sum(last.unit_errors.values()),
                                          system_us_per_request=last.cpu.system_us_per_request,
                                          gateway_us_per_request=last.cpu.roles_us_per_request.get("gateway")))
            assert last is not None
            report = last
            if len(curve) > 1:
                report.scale = curve
        else:
            with start_embedded(up_args=shlex.split(opts.up_args)) as system:
                report = measure_once(system, scenario, opts)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    R.finish(report, opts.out, check=opts.check)
    return report


def topologies(gateways: str | None, workers: str | None) -> list[tuple[int, int]]:
    """``--gateways``/``--workers`` lists → the (gateways, workers) points to run, in order
    (every combination; a missing option is 1)."""
    def counts(spec: str | None, name: str) -> list[int]:
        if spec is None:
            return [1]
        try:
            values = [int(v) for v in spec.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or min(values) < 1 or max(values) > 64:
            raise ValueError(f"--{name}: expected whole numbers 1-64 separated by commas, got {spec!r}")
        return values
    return [(g, w) for g in counts(gateways, "gateways") for w in counts(workers, "workers")]


def achieved_rate(report: R.RunReport, duration: float) -> float:
    """Units completed without error per second over the whole seconds of the scheduled
    window: equal to the offered rate while the system keeps up, its capacity when it does not
    (completions during the drain after the window are left out, or a saturated step would
    look as if it had kept up)."""
    seconds = max(1, int(duration))
    done = sum(s.units - s.unit_errors for s in report.timeline[:seconds])
    return round(done / seconds, 3)
