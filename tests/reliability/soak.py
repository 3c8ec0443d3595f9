"""The mixed soak at 80 % of saturation on the distributed split topology (``docs/reliability.md``,
figure 5):

    python -m tests.reliability.soak [--soak 600]

runs ``workup bench mix --gateways 1 --workers 2 --rate 2..400 --rate-factor 1.5 --p99-bound 1000
--duration 8 --soak 600`` (``--p99-bound`` is an option here too; ``docs/performance.md`` explains the bench: open loop, rate steps up
to saturation, then ``--soak`` seconds at 80 % of it, the RSS of every process sampled each second)
with the server variables pointing at the dev services under names of this run's own (``_system.py``),
then reads the bench's JSON report and adds what the issue asks of a soak: errors, every process's
RSS last / first (flat within 10 %), the p99 minute by minute (the median and the worst of the
per-second p99s of each minute: stable when the last minute's median is within twice the first's),
and the load average of the machine before and after. Exit 1 when one of those is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import msgspec

from ._system import Servers, Stores


class Figures(msgspec.Struct):
    saturation_rate: float = 0.0
    soak_rate: float = 0.0
    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    p99_by_minute_ms: list[tuple[float, float]] = []      # (median, worst) of the per-second p99s
    rss_growth: dict[str, float] = {}                     # process → last / first
    rss_mib: dict[str, tuple[float, float]] = {}          # process → (first, last)
    load_before: str = ""
    load_after: str = ""
    report: str = ""
    failures: list[str] = []

    @property
    def ok(self) -> bool:
        return not self.failures


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def summarise(report: dict, figures: Figures) -> Figures:
    """The soak's figures from the bench's JSON report (its last run is the soak)."""
    lat = report["unit_latency"]
    figures.saturation_rate, figures.soak_rate = report.get("saturation_rate") or 0.0, report["rate"]
    figures.seconds, figures.requests, figures.errors = round(report["seconds"]), report["requests"], report["errors"]
    figures.p50_ms, figures.p99_ms, figures.max_ms = lat["p50_ms"], lat["p99_ms"], lat["max_ms"]
    by_minute: dict[int, list[float]] = {}
    for second in report["timeline"]:
        if second.get("p99_ms") is not None:
            by_minute.setdefault(second["second"] // 60, []).append(second["p99_ms"])
    figures.p99_by_minute_ms = [(round(statistics.median(v), 1), round(max(v), 1)) for _, v in sorted(by_minute.items())]
    for name, samples in (report.get("rss_mib") or {}).items():
        seen = [s for s in samples if s is not None]
        if seen:
            figures.rss_mib[name] = (seen[0], seen[-1])
            figures.rss_growth[name] = round(seen[-1] / seen[0], 3)
    if not figures.saturation_rate:
        figures.failures.append("no rate step was sustained, so the bench ran no soak")
    if figures.errors or report.get("unit_errors"):
        figures.failures.append(f"{figures.errors} errors")
    if not figures.rss_growth:
        figures.failures.append("no RSS samples")
    worst = max(figures.rss_growth.items(), key=lambda kv: abs(kv[1] - 1), default=("", 1.0))
    if abs(worst[1] - 1) > 0.10:
        figures.failures.append(f"RSS of {worst[0]} changed by {worst[1]:.2f}x")
    minutes = figures.p99_by_minute_ms
    if len(minutes) >= 2 and minutes[-1][0] > 2 * max(minutes[0][0], 1.0):
        figures.failures.append(f"p99 grew: first minute {minutes[0][0]} ms, last {minutes[-1][0]} ms")
    return figures


def measure(*, soak: float, duration: float, out: Path, p99_bound: float = 1000.0, share: float = 0.8,
            servers: Servers | None = None) -> Figures:
    figures = Figures(load_before=_load(), report=str(out))
    stores = Stores(servers or Servers.shared(), "relsoak")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_") or k.startswith("WORKUP_TEST_")
               or "KEY" in k}
        env.update(stores.env())
        argv = [sys.executable, "-m", "workup", "bench", "mix", "--gateways", "1", "--workers", "2",
                "--rate", "2..400", "--rate-factor", "1.5", "--p99-bound", str(p99_bound), "--duration", str(duration),
                "--soak", str(soak), "--soak-share", str(share), "--out", str(out)]
        run = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=soak + 1800)
        (out / "bench-output.txt").write_text(run.stdout + run.stderr)
        figures.load_after = _load()
        try:
            report = json.loads((out / "mix.json").read_text())
        except (OSError, ValueError):
            figures.failures.append(f"the bench exited {run.returncode} without mix.json: {(run.stdout + run.stderr)[-1500:]}")
            return figures
        return summarise(report, figures)
    finally:
        stores.drop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.reliability.soak", description=__doc__.split("\n")[0])
    p.add_argument("--soak", type=float, default=600.0, help="seconds at 80 %% of saturation")
    p.add_argument("--duration", type=float, default=8.0, help="seconds per rate step")
    p.add_argument("--p99-bound", type=float, default=1000.0,
                   help="ms; a rate step with a higher p99 is not sustained (the bench's option)")
    p.add_argument("--out", type=Path, default=None, help="the bench's report directory (default: a new temporary one)")
    a = p.parse_args(argv)
    out = a.out or Path(tempfile.mkdtemp(prefix="workup-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    figures = measure(soak=a.soak, duration=a.duration, out=out, p99_bound=a.p99_bound)
    print(json.dumps(msgspec.to_builtins(figures), indent=1))
    print("OK" if figures.ok else "FAILED: " + "; ".join(figures.failures), file=sys.stderr)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
