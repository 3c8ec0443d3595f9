"""Shared benchmark helpers.

- :class:`Recorder` + :func:`closed_loop_trio` / :func:`closed_loop_asyncio`: keep *c* calls in
  flight for a warm-up window, then a measure window; only calls that complete inside the
  measure window count; latency is from just before the call to its return.
- :func:`percentile` (nearest rank), :class:`Result`.
- :class:`Server`: a child process that prints ``READY`` once it serves;
  :func:`run_client`: a child client process that reports ``MARK start``/``MARK end`` at its
  measure window's edges (:func:`mark`) and its :class:`Result` (:func:`emit_result`).
- :func:`table` and :func:`save_json` (``perf/results/<name>-<UTC time>.json``).
- :class:`Target`, :func:`check_option` and :func:`judge`: each bench's own targets, printed,
  and with ``--check`` a missed one exits 1.
"""

from __future__ import annotations

import json
import math
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Sequence

import click
import msgspec

from ..transport.accounts import dev_url

__all__ = ["Result", "Recorder", "percentile", "closed_loop_trio", "closed_loop_asyncio",
           "Server", "run_client", "mark", "emit_result", "window_options", "table", "save_json", "machine",
           "server_default", "AMQP_DEV", "REDIS_DEV",
           "RESULTS_DIR", "Target", "check_option", "judge"]


AMQP_DEV = dev_url("test")   # the dev node's test account (ops/dev/services), never guest
REDIS_DEV = "redis://127.0.0.1:6379/0"


def server_default(field: str, fallback: str = "") -> Callable[[], str]:
    """A bench option's default: the system's own setting of that server (``WORKUP_<FIELD>``, read
    through :class:`~workup.settings.Settings` like every role), else ``fallback`` (the dev
    server's loopback address, or "" for none). A bad variable is one line and exit code 2."""
    def default() -> str:
        from ..settings import SettingsError, load_settings
        try:
            value = getattr(load_settings(), field)
        except SettingsError as exc:
            raise click.UsageError(str(exc)) from None
        return value or fallback
    return default


RESULTS_DIR = Path(__file__).resolve().parents[2] / "perf" / "results"


class Result(msgspec.Struct, kw_only=True):
    name: str
    in_flight: int
    calls: int
    errors: int
    seconds: float
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_call: float | None = None  # of the measuring (client) process


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (``nan`` if empty)."""
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


class Recorder:
    """Collects latencies of calls that complete inside ``[start, end]`` (perf_counter)."""

    def __init__(self, warmup: float, duration: float) -> None:
        now = time.perf_counter()
        self.start = now + warmup
        self.end = self.start + duration
        self.latencies: list[float] = []
        self.errors = 0
        self.cpu_start = self.cpu_end = 0.0

    def record(self, t0: float, t1: float) -> None:
        if self.start <= t1 <= self.end:
            self.latencies.append(t1 - t0)

    def error(self, t1: float) -> None:
        if self.start <= t1 <= self.end:
            self.errors += 1

    def result(self, name: str, in_flight: int) -> Result:
        lat = sorted(self.latencies)
        seconds = self.end - self.start
        cpu = self.cpu_end - self.cpu_start
        return Result(name=name, in_flight=in_flight, calls=len(lat), errors=self.errors,
                      seconds=round(seconds, 3), calls_per_s=round(len(lat) / seconds, 1),
                      p50_ms=round(percentile(lat, 50) * 1000, 3),
                      p99_ms=round(percentile(lat, 99) * 1000, 3),
                      cpu_us_per_call=round(cpu / len(lat) * 1e6, 1) if lat else None)


async def _loop(call: Callable[[], Awaitable[Any]], rec: Recorder) -> None:
    clock = time.perf_counter
    end = rec.end
    while True:
        t0 = clock()
        if t0 > end:
            return
        try:
            await call()
        except Exception:
            rec.error(clock())
            continue
        rec.record(t0, clock())


async def _mark_cpu(rec: Recorder, sleep: Callable[[float], Awaitable[Any]],
                    on_mark: Callable[[str], None] | None) -> None:
    """Read our CPU time at the window's edges; ``on_mark("start"/"end")`` lets a parent
    process read its other processes' CPU time at the same moments."""
    await sleep(max(0.0, rec.start - time.perf_counter()))
    rec.cpu_start = time.process_time()
    if on_mark:
        on_mark("start")
    await sleep(max(0.0, rec.end - time.perf_counter()))
    rec.cpu_end = time.process_time()
    if on_mark:
        on_mark("end")


async def closed_loop_trio(name: str, call: Callable[[], Awaitable[Any]], in_flight: int, *,
                           warmup: float, duration: float,
                           on_mark: Callable[[str], None] | None = None) -> Result:
    import trio

    rec = Recorder(warmup, duration)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_mark_cpu, rec, trio.sleep, on_mark)
        for _ in range(in_flight):
            nursery.start_soon(_loop, call, rec)
        await trio.sleep(rec.end - time.perf_counter() + 0.05)
        nursery.cancel_scope.cancel()  # calls still in flight do not count
    return rec.result(name, in_flight)


async def closed_loop_asyncio(name: str, call: Callable[[], Awaitable[Any]], in_flight: int, *,
                              warmup: float, duration: float,
                              on_mark: Callable[[str], None] | None = None) -> Result:
    import asyncio

    rec = Recorder(warmup, duration)
    tasks = [asyncio.ensure_future(_loop(call, rec)) for _ in range(in_flight)]
    marker = asyncio.ensure_future(_mark_cpu(rec, asyncio.sleep, on_mark))
    await asyncio.sleep(rec.end - time.perf_counter() + 0.05)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, marker, return_exceptions=True)
    return rec.result(name, in_flight)


class _Lines:
    """A child's stdout lines with a deadline: a reader thread feeds a queue, so a child that
    hangs without printing (say, its broker went away mid-run) ends the wait at the deadline
    instead of blocking the benchmark for ever. ``None`` marks the end of the output."""

    def __init__(self, stream: Any) -> None:
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: Any) -> None:
        try:
            for raw in stream:
                self._queue.put(raw.decode(errors="replace").strip())
        finally:
            self._queue.put(None)

    def next(self, deadline: float) -> str | None:
        """The next line; ``None`` at the end; ``TimeoutError`` at ``deadline`` (monotonic)."""
        try:
            return self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError from None


class Server:
    """A child process (``python -m <module> <args>``) that prints ``READY`` when it serves;
    stopped with SIGTERM (then SIGKILL) on exit. ``cpu_seconds()`` reads its CPU time.
    ``env`` is added to the environment (pass secrets such as URLs with passwords there, not
    in ``args``: arguments show in ``ps`` and in error messages)."""

    def __init__(self, module: str, *args: str, ready_timeout: float = 30.0,
                 env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args],
                                     stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})))
        assert self.proc.stdout is not None
        lines, deadline = _Lines(self.proc.stdout), time.monotonic() + ready_timeout
        while True:
            try:
                line = lines.next(deadline)
            except TimeoutError:
                line = None
            if line == "READY":
                break
            if line is None:
                self.stop()
                raise RuntimeError(f"{module} {args[0] if args else ''} did not start within "
                                   f"{ready_timeout:.0f} s (exit code {self.proc.returncode})")

    def cpu_seconds(self) -> float:
        import psutil
        try:
            times = psutil.Process(self.proc.pid).cpu_times()
        except psutil.Error:
            return math.nan
        return float(times.user + times.system)

    def stop(self) -> None:
        from ..cli.gateway import stop_processes

        stop_processes([self.proc], timeout=5)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def window_options(scenario: str, *, warmup: float = 1.0,
                   duration: float = 4.0) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click options every scenario has: ``--warmup``, ``--duration``, ``--json``."""
    import click

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
                          help=f"where to write the results (default "
                               f"perf/results/{scenario}-<UTC time>.json)")(fn)
        fn = click.option("--duration", type=click.FloatRange(0.1, 3600), default=duration,
                          show_default=True, help="measured seconds per cell")(fn)
        return click.option("--warmup", type=click.FloatRange(0, 600), default=warmup,
                            show_default=True, help="warm-up seconds per cell")(fn)
    return decorate


def emit_result(result: Result) -> None:
    """How a client process hands its :class:`Result` to :func:`run_client`."""
    print("RESULT", json.dumps(msgspec.to_builtins(result)), flush=True)


def mark(phase: str) -> None:
    """``on_mark`` for the closed-loop drivers in a client process run by :func:`run_client`."""
    print("MARK", phase, flush=True)


def run_client(module: str, *args: str, on_mark: Callable[[str], None] | None = None,
               timeout: float = 600.0, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python -m module args`` (a client that uses :func:`mark` and :func:`emit_result`);
    ``on_mark(phase)`` runs when it reaches the edges of its measure window (e.g. to read a
    server's CPU time). Returns the result as a dict. ``env`` as for :class:`Server`."""
    client = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=dict(os.environ, **(env or {})))
    assert client.stdout is not None
    result: dict[str, Any] | None = None
    lines, deadline = _Lines(client.stdout), time.monotonic() + timeout
    try:
        while (line := lines.next(deadline)) is not None:
            if line.startswith("MARK ") and on_mark is not None:
                on_mark(line[5:])
            elif line.startswith("RESULT "):
                result = json.loads(line[7:])
        client.wait(max(0.0, deadline - time.monotonic()))
    except (TimeoutError, subprocess.TimeoutExpired):
        raise RuntimeError(f"{module} {args[0] if args else ''} gave no result within {timeout:.0f} s "
                           f"(stopped; is a service it needs still up?)") from None
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    if result is None:
        raise RuntimeError(f"{module} {args[0] if args else ''} gave no result "
                           f"(exit code {client.returncode})")
    return result


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (numbers right-aligned, thousands separated)."""
    def fmt(value: Any) -> str:
        if isinstance(value, float):
            return "-" if math.isnan(value) else f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return "-" if value is None else str(value)

    cells = [[fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]

    def line(vals: Sequence[str]) -> str:
        return "| " + " | ".join(v.rjust(w) if i else v.ljust(w)
                                 for i, (v, w) in enumerate(zip(vals, widths))) + " |"

    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
                     + [line(r) for r in cells])


def machine() -> dict[str, Any]:
    import psutil
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "cpu_busy_percent": psutil.cpu_percent(interval=0.3)}


def save_json(name: str, data: Any, path: str | Path | None = None) -> Path:
    """Write ``data`` to ``path`` or ``perf/results/<name>-<UTC time>.json``; return the path."""
    if path is None:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{name}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path = Path(path)
    path.write_text(json.dumps(msgspec.to_builtins(data), indent=2) + "\n")
    return path


class Target(msgspec.Struct, kw_only=True, frozen=True):
    """A bench's own target: ``value`` at least ``limit`` (or at most, with ``at_most``); a
    value the run could not measure (``None``) misses it."""
    name: str
    value: float | None
    limit: float
    at_most: bool = False

    @property
    def met(self) -> bool:
        if self.value is None or math.isnan(self.value):
            return False
        return self.value <= self.limit if self.at_most else self.value >= self.limit


def check_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--check``: exit 1 when a target of this bench is missed (the command gets ``check``)."""
    import click
    return click.option("--check", is_flag=True, help="exit 1 when a target of this bench is missed")(fn)


def judge(targets: Sequence[Target], check: bool) -> None:
    """Print the targets and their verdicts; with ``check``, exit 1 when one is missed."""
    import click
    if not targets:
        return
    click.echo(table(["target", "value", "limit", "verdict"],
                     [(t.name, t.value, f"{'<=' if t.at_most else '>='} {t.limit:g}", "met" if t.met else "MISSED")
                      for t in targets]))
    missed = [t.name for t in targets if not t.met]
    if missed and check:
        click.echo(f"targets missed: {'; '.join(missed)}", err=True)
        raise SystemExit(1)
