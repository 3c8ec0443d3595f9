"""What a load bench leaves behind in ``perf/results/<UTC timestamp>/``: ``<name>.json`` (every
figure and the environment), ``<name>.md`` (a summary a person reads) and PNG charts
(matplotlib's Agg backend, so no display is needed).

:func:`build` turns the load generator's :class:`~workup.bench.loadgen.Stats` into a
:class:`RunReport`; :func:`write` writes the three kinds of file. ``workup bench compare`` reads
the JSON back with :func:`load`.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from importlib import metadata
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from ._harness import RESULTS_DIR
from .loadgen import Latency, Stats, Window

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["RunReport", "StepReport", "SecondReport", "Cpu", "Check", "RateStep", "ScalePoint", "CorpusPoint", "build", "finish",
           "write", "load", "environment", "results_dir"]


class StepReport(msgspec.Struct, kw_only=True):
    name: str
    ok: int
    errors: dict[str, int]
    latency: Latency                  # service time: from the actual send to the whole answer


class SecondReport(msgspec.Struct, kw_only=True):
    second: int
    requests: int
    errors: int
    units: int
    unit_errors: int
    p50_ms: float | None
    p99_ms: float | None


class Cpu(msgspec.Struct, kw_only=True):
    """CPU seconds over the measured window and per request, of the load generator and (when
    this bench started it) of the system."""
    loadgen_s: float
    loadgen_us_per_request: float | None
    system_s: float | None = None
    system_us_per_request: float | None = None
    loadgen_over_system: float | None = None
    roles_us_per_request: dict[str, float] = {}   # the system's CPU split by process role ("gateway", "worker jobs")
    # ms of CPU per completed unit of each process group of the machine (system.cpu_by_group)
    groups_ms_per_unit: dict[str, float] = {}


class Check(msgspec.Struct, kw_only=True):
    target: str
    value: float | None
    limit: float
    met: bool


class RateStep(msgspec.Struct, kw_only=True):
    """One step of ``--rate`` stepping: the offered rate and what came of it."""
    offered: float
    achieved: float
    errors: int
    p50_ms: float | None
    p99_ms: float | None
    sustained: bool


class ScalePoint(msgspec.Struct, kw_only=True):
    """One run of a scale curve: the split topology's process counts and what came of them."""
    gateways: int
    workers: int
    units_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    errors: int
    system_us_per_request: float | None
    gateway_us_per_request: float | None = None   # the gateway processes' share of the above


class CorpusPoint(msgspec.Struct, kw_only=True):
    """One size of ``workup bench corpus``: the latency of each read at that many jobs."""
    size: int
    steps: dict[str, Latency]
    errors: int
    seed_jobs_per_s: int | None = None    # how fast the jobs up to this size were written in bulk


class RunReport(msgspec.Struct, kw_only=True):
    name: str
    started_at: str                   # RFC 3339 UTC
    loop: str                         # "closed" or "open"
    users: int | None
    rate: float | None                # units per second offered (open loop)
    unit: str                         # what one unit is ("flow", "request")
    seconds: float
    units_started: int
    units_ok: int
    unit_errors: dict[str, int]
    units_per_s: float                # units completed / the window (up to the last one's end)
    unit_latency: Latency             # closed: from the unit's start; open: from its intended start
    start_lag: Latency                # open loop: how late units started (our own lateness)
    requests: int
    errors: int
    requests_per_s: float
    steps: list[StepReport]
    timeline: list[SecondReport]
    cpu: Cpu
    environment: dict[str, object]
    settings: dict[str, object]
    rate_steps: list[RateStep] = []
    saturation_rate: float | None = None
    checks: list[Check] = []
    hdr_unit_latency: str = ""        # base64 HdrHistogram, for finer comparison later
    rss_mib: dict[str, list[float | None]] = {}   # each system process, once a second
    scale: list[ScalePoint] = []      # --gateways/--workers lists: one point per topology run
    corpus: list[CorpusPoint] = []    # workup bench corpus: one point per size
    soak: bool = False                # this run is the soak after --rate stepping (--soak)

    def rss_growth(self) -> dict[str, float | None]:
        """Each process's last RSS sample over its first (1.0 = flat)."""
        out: dict[str, float | None] = {}
        for name, samples in self.rss_mib.items():
            known = [v for v in samples if v is not None and not math.isnan(v)]
            out[name] = round(known[-1] / known[0], 3) if len(known) >= 2 and known[0] else None
        return out

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.met]


def _round(value: float | None, digits: int = 3) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(value, digits)


def build(name: str, stats: Stats, window: Window, *, loop: str, users: int | None, rate: float | None,
          unit: str, system_cpu_s: float | None, environment: dict[str, object],
          settings: dict[str, object], role_cpu_s: dict[str, float] | None = None,
          group_cpu_s: dict[str, float] | None = None) -> RunReport:
    requests, errors = stats.requests, stats.errors
    per_request = lambda cpu: (cpu / requests * 1e6) if requests else math.nan  # noqa: E731
    cpu = Cpu(loadgen_s=round(window.cpu_seconds, 3),
              loadgen_us_per_request=_round(per_request(window.cpu_seconds), 1))
    if system_cpu_s is not None:
        cpu.system_s = round(system_cpu_s, 3)
        cpu.system_us_per_request = _round(per_request(system_cpu_s), 1)
        cpu.loadgen_over_system = _round(window.cpu_seconds / system_cpu_s if system_cpu_s > 0 else math.nan)
    for role, seconds in sorted((role_cpu_s or {}).items()):
        value = _round(per_request(seconds), 1)
        if value is not None:
            cpu.roles_us_per_request[role] = value
    for group, seconds in (group_cpu_s or {}).items():
        if stats.units_ok:
            cpu.groups_ms_per_unit[group] = round(seconds / stats.units_ok * 1e3, 2)
    timeline = [SecondReport(second=i, requests=s.requests, errors=s.errors, units=s.units,
                             unit_errors=s.unit_errors, p50_ms=s.latency.percentile_ms(50),
                             p99_ms=s.latency.percentile_ms(99))
                for i, s in enumerate(stats.timeline)]
    return RunReport(
        name=name, started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), loop=loop,
        users=users, rate=rate, unit=unit, seconds=round(window.seconds, 3),
        units_started=window.units_started, units_ok=stats.units_ok, unit_errors=dict(stats.unit_errors),
        units_per_s=round(stats.units_ok / window.seconds, 3), unit_latency=stats.unit_latency.summary(),
        start_lag=stats.start_lag.summary(),
        requests=requests, errors=errors, requests_per_s=round(requests / window.seconds, 2),
        steps=[StepReport(name=n, ok=s.ok, errors=dict(s.errors), latency=s.latency.summary())
               for n, s in stats.steps.items()],
        timeline=timeline, cpu=cpu, environment=environment, settings=settings,
        hdr_unit_latency=stats.unit_latency.encode() if stats.unit_latency.count else "")


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(mode: str, servers: list[str], base_url: str) -> dict[str, object]:
    """The machine, the versions and the system's mode, for the JSON (no secrets: server
    variables are listed by name only)."""
    import psutil
    return {
        "mode": mode, "servers": servers, "base_url": base_url,
        "cpu_model": _cpu_model(), "cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2), "platform": platform.platform(),
        "python": platform.python_version(), "commit": _git_commit(),
        "versions": {d: _version(d) for d in ("workup", "trio", "hypercorn", "quart-trio", "msgspec", "hdrhistogram")},
    }


def results_dir(root: Path | None = None) -> Path:
    """A new ``perf/results/<UTC timestamp>/`` (``-2``, ``-3``… when two runs share a second)."""
    root = root or RESULTS_DIR   # one perf/results folder for every bench
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path, n = root / stamp, 1
    while path.exists():
        n += 1
        path = root / f"{stamp}-{n}"
    path.mkdir(parents=True)
    return path


def load(path: str | Path) -> RunReport:
    """A report's JSON (``path`` may be the file or its directory, if it holds one JSON)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.json"))
        if len(found) != 1:
            raise ValueError(f"{path}: expected one JSON report, found {len(found)}")
        path = found[0]
    return msgspec.json.decode(path.read_bytes(), type=RunReport)


def _fmt(value: float | int | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"


def _md_table(headers: list[str], rows: Sequence[Sequence[object]]) -> str:
    def cell(v: object) -> str:
        return _fmt(v) if isinstance(v, (int, float)) or v is None else str(v)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def headroom(values: Sequence[float]) -> float:
    """A chart's top: 10 % over the highest value, so a flat line at the peak is not drawn on
    the frame (a flat RSS over a soak looked like a line that stopped)."""
    return max([v for v in values if not math.isnan(v)], default=1.0) * 1.1 or 1.0


def _known(samples: list[float | None]) -> list[float]:
    return [v for v in samples if v is not None and not math.isnan(v)]


def markdown(r: RunReport, charts: list[str]) -> str:
    env = r.environment
    cpu_rows: list[list[object]] = [["load generator", r.cpu.loadgen_s, r.cpu.loadgen_us_per_request],
                                    ["system", r.cpu.system_s, r.cpu.system_us_per_request]]
    cpu_rows += [[f"of which {role}", None, us] for role, us in r.cpu.roles_us_per_request.items()]
    load_desc = f"{r.users} users, closed loop" if r.loop == "closed" else f"{r.rate:g} {r.unit}s/s offered, open loop"
    if r.soak:
        load_desc += " (the soak, after the rate steps below)"
    out = [f"# workup bench {r.name}: {r.started_at}", "",
           f"{load_desc}; {r.seconds:.1f} s measured; system {env.get('mode')} ({env.get('topology')}) at {env.get('base_url')}; "
           f"commit {env.get('commit')}; {env.get('cpus')} CPUs ({env.get('cpu_model')}), "
           f"load average {env.get('load_avg_1m')} at the start.", "",
           _md_table(["", "count", "per s", "errors", "p50 ms", "p99 ms", "max ms"], [
               [f"{r.unit}s (latency {'from the intended start' if r.loop == 'open' else 'end to end'})",
                r.units_ok, r.units_per_s, sum(r.unit_errors.values()), r.unit_latency.p50_ms,
                r.unit_latency.p99_ms, r.unit_latency.max_ms],
               ["requests", r.requests, r.requests_per_s, r.errors, None, None, None]]), "",
           "## Steps (service time of each request)", "",
           _md_table(["step", "ok", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"],
                     [[s.name, s.ok, ", ".join(f"{k}: {v}" for k, v in s.errors.items()) or "0",
                       s.latency.p50_ms, s.latency.p90_ms, s.latency.p99_ms, s.latency.max_ms] for s in r.steps]),
           "", "## CPU", "",
           _md_table(["process", "CPU s", "µs per request"], cpu_rows)]
    if r.cpu.groups_ms_per_unit:
        groups = r.cpu.groups_ms_per_unit
        out += ["", f"CPU per completed {r.unit}, ms (from /proc; the servers and the machine are shared "
                    "with anything else running):", "",
                _md_table(list(groups), [list(groups.values())])]
    if r.loop == "open" and r.start_lag.count:
        out += ["", f"Start lag (how late the load generator started units after their intended time; "
                    f"it counts in the latencies above): p50 {_fmt(r.start_lag.p50_ms)} ms, "
                    f"p99 {_fmt(r.start_lag.p99_ms)} ms, max {_fmt(r.start_lag.max_ms)} ms."]
    if r.cpu.loadgen_over_system is not None:
        out += ["", f"Load generator / system CPU: {r.cpu.loadgen_over_system:.2f}."]
    if r.rss_mib:
        growth = r.rss_growth()
        out += ["", "## Memory (RSS of the system's processes over the window)", "",
                _md_table(["process", "first MiB", "last MiB", "max MiB", "last / first"],
                          [[name, _known(v)[0], _known(v)[-1], max(_known(v)), growth[name]]
                           for name, v in r.rss_mib.items() if _known(v)])]
    if r.rate_steps:
        out += ["", "## Rate steps", "",
                _md_table(["offered/s", "achieved/s", "errors", "p50 ms", "p99 ms", "sustained"],
                          [[s.offered, s.achieved, s.errors, s.p50_ms, s.p99_ms, "yes" if s.sustained else "no"]
                           for s in r.rate_steps]),
                "", f"Saturation: {_fmt(r.saturation_rate)} {r.unit}s/s (highest sustained step)."]
    if r.scale:
        base = r.scale[0].units_per_s
        out += ["", "## Scale curve (split topology; the sections above are the last point's)", "",
                _md_table(["gateways", "workers per service", f"{r.unit}s/s", "× first", "p50 ms", "p99 ms",
                           "errors", "system CPU µs/request", "gateway CPU µs/request"],
                          [[p.gateways, p.workers, p.units_per_s, round(p.units_per_s / base, 2) if base else None,
                            p.p50_ms, p.p99_ms, p.errors, p.system_us_per_request, p.gateway_us_per_request]
                           for p in r.scale])]
    if r.corpus:
        names = list(r.corpus[0].steps)
        out += ["", "## Latency against corpus size (the sections above are the largest size's)", "",
                _md_table(["jobs", "seeded jobs/s"] + [f"{n} {q}" for n in names for q in ("p50 ms", "p99 ms")] + ["errors"],
                          [[p.size, p.seed_jobs_per_s] + [v for n in names for v in (p.steps[n].p50_ms if n in p.steps else None,
                                                                 p.steps[n].p99_ms if n in p.steps else None)]
                           + [p.errors] for p in r.corpus])]
    if r.checks:
        out += ["", "## Targets", "",
                _md_table(["target", "value", "limit", "met"],
                          [[c.target, c.value, c.limit, "yes" if c.met else "**no**"] for c in r.checks])]
    if charts:
        out += ["", "## Charts", ""] + [f"![{c}]({c})" for c in charts]
    return "\n".join(out) + "\n"


def _charts(r: RunReport, out: Path) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def nan(values: list[float | None]) -> list[float]:
        return [math.nan if v is None else v for v in values]

    names: list[str] = []

    def save(fig: Figure, title: str, suffix: str) -> None:
        fig.suptitle(title)
        fig.tight_layout()
        fig.savefig(out / f"{r.name}-{suffix}.png", dpi=80)
        plt.close(fig)
        names.append(f"{r.name}-{suffix}.png")

    t = [s.second for s in r.timeline]
    fig, (lat, thr, err) = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    lat.plot(t, nan([s.p50_ms for s in r.timeline]), label="p50")
    lat.plot(t, nan([s.p99_ms for s in r.timeline]), label="p99")
    lat.set_ylabel("request ms")
    lat.legend(loc="upper left")
    thr.plot(t, [s.requests for s in r.timeline], label="requests/s")
    if r.unit != "request":           # one unit is one request in mix and corpus: one line
        thr.plot(t, [s.units for s in r.timeline], label=f"{r.unit}s/s")
    thr.set_ylabel("per second")
    thr.set_ylim(bottom=0)
    thr.legend(loc="upper left")
    err.bar(t, [s.errors for s in r.timeline], color="tab:red")
    err.set_ylabel("errors/s")
    err.set_ylim(bottom=0, top=max([1] + [s.errors for s in r.timeline]) * 1.1)
    err.set_xlabel("second of the measured window")
    save(fig, f"workup bench {r.name} ({r.environment.get('mode')}, {r.loop} loop)", "timeline")

    if r.steps:
        fig, ax = plt.subplots(figsize=(8, 0.35 * len(r.steps) + 1.5))
        labels = [s.name for s in r.steps]
        ys = range(len(labels))
        ax.barh([y + 0.2 for y in ys], nan([s.latency.p99_ms for s in r.steps]), height=0.4, label="p99")
        ax.barh([y - 0.2 for y in ys], nan([s.latency.p50_ms for s in r.steps]), height=0.4, label="p50")
        ax.set_yticks(list(ys), labels)
        ax.invert_yaxis()
        ax.set_xlabel("ms")
        ax.legend()
        save(fig, f"workup bench {r.name}: latency by step", "steps")

    if r.rss_mib:
        fig, ax = plt.subplots(figsize=(8, 4))
        for name, samples in r.rss_mib.items():
            ax.plot(range(len(samples)), nan(samples), label=name[:40])
        ax.set_xlabel("second of the measured window")
        ax.set_ylabel("RSS MiB")
        ax.set_ylim(bottom=0, top=headroom([v for s in r.rss_mib.values() for v in _known(s)]))
        ax.legend(fontsize="small")
        save(fig, f"workup bench {r.name}: memory of the system's processes", "rss")

    if r.scale:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"{p.gateways} gw / {p.workers} w" for p in r.scale]
        ax.plot(labels, [p.units_per_s for p in r.scale], marker="o")
        ax.set_xlabel("gateway processes / worker processes per service")
        ax.set_ylabel(f"{r.unit}s/s")
        ax.set_ylim(bottom=0)
        save(fig, f"workup bench {r.name}: throughput against processes", "scale")

    if r.corpus:
        fig, ax = plt.subplots(figsize=(8, 4))
        sizes = [p.size for p in r.corpus]
        for name in r.corpus[0].steps:
            for q, style in (("p50_ms", "-"), ("p99_ms", ":")):
                ax.plot(sizes, nan([getattr(p.steps[name], q) if name in p.steps else None for p in r.corpus]),
                        style, marker="o", label=f"{name} {q[:3]}")
        ax.set_xscale("log")
        ax.set_xlabel("jobs in the corpus")
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize="small")
        save(fig, f"workup bench {r.name}: latency against corpus size", "corpus")

    if r.rate_steps:
        fig, (lat, thr) = plt.subplots(1, 2, figsize=(10, 4))
        offered = [s.offered for s in r.rate_steps]
        lat.plot(offered, nan([s.p50_ms for s in r.rate_steps]), marker="o", label="p50")
        lat.plot(offered, nan([s.p99_ms for s in r.rate_steps]), marker="o", label="p99")
        lat.set_xlabel(f"offered {r.unit}s/s")
        lat.set_ylabel("ms (from the intended start)")
        lat.legend()
        thr.plot(offered, [s.achieved for s in r.rate_steps], marker="o", label="achieved")
        thr.plot(offered, offered, linestyle=":", label="offered")
        thr.set_xlabel(f"offered {r.unit}s/s")
        thr.set_ylabel(f"{r.unit}s/s")
        thr.legend()
        save(fig, f"workup bench {r.name}: latency and throughput against offered rate", "rate")
    return names


def write(report: RunReport, out: Path) -> list[Path]:
    """``<name>.json``, ``<name>.md`` and the charts in ``out``; their paths."""
    out.mkdir(parents=True, exist_ok=True)
    charts = _charts(report, out)
    json_path, md_path = out / f"{report.name}.json", out / f"{report.name}.md"
    json_path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    md_path.write_text(markdown(report, charts))
    return [json_path, md_path, *(out / c for c in charts)]


def finish(report: RunReport, out: str | None, *, check: bool) -> list[Path]:
    """Write the report (``out`` or a new ``perf/results/<timestamp>/``), print its summary and
    the missed targets; with ``check``, exit 1 when one was missed."""
    import click
    paths = write(report, Path(out) if out else results_dir())
    click.echo(markdown(report, []))
    click.echo(f"report: {', '.join(str(p) for p in paths)}", err=True)
    missed = report.failed_checks
    if missed:
        click.echo("targets missed: " + "; ".join(f"{c.target} = {c.value} (limit {c.limit})" for c in missed), err=True)
        if check:
            raise SystemExit(1)
    return paths
