"""The load generator under ``workup bench flow`` and ``workup bench mix``: trio tasks that run
*units* (one flow, one request of the mix) closed loop or open loop, bounded in time and in units.

- **Closed loop** (:func:`closed_loop`): ``users`` tasks, each starting its next unit when the
  last one ends. Simple, but a slow system slows the load down with it, so it understates
  latency under load (coordinated omission).
- **Open loop** (:func:`open_loop`): units start on a fixed schedule, ``rate`` per second
  (:func:`schedule`), whatever the system does, as wrk2 does. A unit's latency runs from its
  *intended* start, so time spent waiting behind a slow answer (or for a free slot when
  ``max_in_flight`` units are already out) counts: coordinated omission is corrected.
- Latencies go into HdrHistograms (:class:`Histogram`, 1 µs to 10 min, 3 significant digits);
  every request is also counted in a per-second :class:`Second` for the progress line and the
  charts.
- Our own CPU time over the measured window is read with ``time.process_time`` so the report
  can say what one request cost the load generator.

A unit is ``async def unit(user, rec) -> None`` that records each request with
:meth:`Recorder.request` and raises :class:`UnitFailed` (or anything) when it cannot go on.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import msgspec
import trio

__all__ = ["Histogram", "Latency", "Second", "Stats", "Recorder", "UnitFailed", "Bounds",
           "Window", "schedule", "closed_loop", "open_loop", "Tick"]

_LOWEST_US, _HIGHEST_US = 1, 600_000_000


class Latency(msgspec.Struct, kw_only=True):
    """A histogram's summary, in milliseconds (``None`` when nothing was recorded)."""
    count: int
    mean_ms: float | None
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p999_ms: float | None
    max_ms: float | None


class Histogram:
    """Latencies in seconds, held by an HdrHistogram in whole microseconds."""

    def __init__(self, digits: int = 3) -> None:
        from hdrh.histogram import HdrHistogram
        self._h = HdrHistogram(_LOWEST_US, _HIGHEST_US, digits)

    def record(self, seconds: float) -> None:
        self._h.record_value(min(_HIGHEST_US, max(_LOWEST_US, round(seconds * 1e6))))

    def add(self, other: "Histogram") -> None:
        self._h.add(other._h)

    @property
    def count(self) -> int:
        return int(self._h.get_total_count())

    def percentile_ms(self, q: float) -> float | None:
        """The value at percentile ``q`` (0-100) in ms, within the histogram's precision;
        ``None`` when empty."""
        if not self.count:
            return None
        return float(self._h.get_value_at_percentile(q)) / 1000

    def summary(self) -> Latency:
        if not self.count:
            return Latency(count=0, mean_ms=None, p50_ms=None, p90_ms=None, p99_ms=None, p999_ms=None, max_ms=None)
        return Latency(count=self.count, mean_ms=round(self._h.get_mean_value() / 1000, 3),
                       p50_ms=self.percentile_ms(50), p90_ms=self.percentile_ms(90),
                       p99_ms=self.percentile_ms(99), p999_ms=self.percentile_ms(99.9),
                       max_ms=float(self._h.get_max_value()) / 1000)

    def encode(self) -> str:
        """The HdrHistogram's standard compressed base64 form (what HdrHistogram tools read)."""
        return self._h.encode().decode()


class Second:
    """What completed during one second of the measured window."""

    __slots__ = ("requests", "errors", "units", "unit_errors", "latency")

    def __init__(self) -> None:
        self.requests = self.errors = self.units = self.unit_errors = 0
        self.latency = Histogram(digits=2)   # of the requests; 2 digits keep it small


class _Step:
    __slots__ = ("latency", "ok", "errors")

    def __init__(self) -> None:
        self.latency = Histogram()
        self.ok = 0
        self.errors: dict[str, int] = {}


class Stats:
    """Everything the measured units recorded: per step (request name) and per unit, plus the
    per-second timeline. Times are ``trio.current_time()`` values; ``start`` is the window's."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.steps: dict[str, _Step] = {}
        self.unit_latency = Histogram()     # from the intended start (open loop) or the start
        # open loop: how late units started after their intended time. Large values mean the
        # load generator (or its machine) could not keep the schedule: the latencies then
        # include our own lateness, and the report says so.
        self.start_lag = Histogram()
        self.units_ok = 0
        self.unit_errors: dict[str, int] = {}
        self.timeline: list[Second] = []

    def _second(self, now: float) -> Second:
        index = max(0, int(now - self.start))
        while len(self.timeline) <= index:
            self.timeline.append(Second())
        return self.timeline[index]

    def request(self, name: str, seconds: float, error: str | None, now: float) -> None:
        step = self.steps.get(name) or self.steps.setdefault(name, _Step())
        second = self._second(now)
        second.requests += 1
        if error is None:
            step.ok += 1
            step.latency.record(seconds)
            second.latency.record(seconds)
        else:
            step.errors[error] = step.errors.get(error, 0) + 1
            second.errors += 1

    def unit(self, seconds: float, error: str | None, now: float) -> None:
        second = self._second(now)
        second.units += 1
        if error is None:
            self.units_ok += 1
            self.unit_latency.record(seconds)
        else:
            self.unit_errors[error] = self.unit_errors.get(error, 0) + 1
            second.unit_errors += 1

    @property
    def requests(self) -> int:
        return sum(s.ok + sum(s.errors.values()) for s in self.steps.values())

    @property
    def errors(self) -> int:
        return sum(sum(s.errors.values()) for s in self.steps.values())

    def recent(self, now: float, seconds: int = 5) -> tuple[float, int, Histogram]:
        """Requests per second, errors and latencies over the last ``seconds`` whole seconds."""
        last = int(now - self.start)
        window = [self.timeline[i] for i in range(max(0, last - seconds), min(last, len(self.timeline)))]
        merged = Histogram(digits=2)
        for second in window:
            merged.add(second.latency)
        rate = sum(s.requests for s in window) / len(window) if window else 0.0
        return rate, sum(s.errors for s in window), merged


class UnitFailed(Exception):
    """A unit cannot go on; ``step`` names the request that failed (already recorded)."""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


class Recorder:
    """What a unit records through: its requests count only when the unit is measured (it did
    not start during the warm-up). ``Recorder(None, measured=False)`` records nothing (for
    requests made before the run, such as seeding)."""

    __slots__ = ("_stats", "measured")

    def __init__(self, stats: Stats | None, measured: bool) -> None:
        self._stats, self.measured = stats, measured and stats is not None

    def request(self, name: str, seconds: float, error: str | None = None) -> None:
        if self.measured:
            assert self._stats is not None
            self._stats.request(name, seconds, error, trio.current_time())


class Unit(Protocol):
    def __call__(self, user: int, rec: Recorder) -> Awaitable[None]: ...


class Bounds(msgspec.Struct, kw_only=True, frozen=True):
    """``warmup`` seconds not measured, then at most ``duration`` seconds and ``max_units`` units
    started in all; units still running then get ``drain`` seconds to finish, then are cancelled
    (a cancelled unit counts nowhere)."""
    duration: float
    warmup: float = 0.0
    max_units: int | None = None
    drain: float = 30.0


class Window(msgspec.Struct, kw_only=True):
    """The measured window (up to the last unit's end) and our CPU time over it."""
    seconds: float
    cpu_seconds: float
    units_started: int


class Tick(Protocol):
    def __call__(self, stats: Stats, now: float, started: int) -> None: ...


def schedule(rate: float, seconds: float, max_units: int | None = None) -> list[float]:
    """Intended start offsets of an open loop: ``i / rate`` for every ``i`` with an offset below
    ``seconds``, at most ``max_units`` of them."""
    if rate <= 0 or seconds <= 0:
        return []
    # the small epsilon keeps 10 s at 3/s to 30 units, not 31 from a rounding error
    n = math.ceil(seconds * rate - 1e-9)
    if max_units is not None:
        n = min(n, max_units)
    return [i / rate for i in range(n)]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnitFailed):
        return exc.step
    return type(exc).__name__


async def _run_unit(unit: Unit, user: int, stats: Stats, measured: bool, t0: float) -> None:
    try:
        await unit(user, Recorder(stats, measured))
    except Exception as exc:   # a failed unit is a figure, not a crash of the bench
        if measured:
            stats.unit(trio.current_time() - t0, _reason(exc), trio.current_time())
        return
    if measured:
        stats.unit(trio.current_time() - t0, None, trio.current_time())


async def _ticker(on_tick: Tick | None, stats: Stats, started: Callable[[], int]) -> None:
    if on_tick is None:
        return
    while True:
        await trio.sleep(1.0)
        on_tick(stats, trio.current_time(), started())


async def _drive(body: Callable[[trio.Nursery, Stats, list[int]], Awaitable[None]], bounds: Bounds,
                 on_tick: Tick | None, on_mark: Callable[[str], None] | None) -> tuple[Stats, Window]:
    """Run ``body`` (which starts units in the nursery and counts them in ``started[0]``) with
    the window's clock and CPU readings around it; bounded by ``bounds.drain`` after the end.
    ``on_mark("start"/"end")`` runs at the window's edges (to read the system's CPU time then)."""
    now = trio.current_time()
    stats = Stats(now + bounds.warmup)
    count = [0]
    cpu0 = math.nan
    async with trio.open_nursery() as ticks:
        ticks.start_soon(_ticker, on_tick, stats, lambda: count[0])

        async def mark_start() -> None:
            nonlocal cpu0
            await trio.sleep_until(stats.start)
            cpu0 = time.process_time()
            if on_mark is not None:
                on_mark("start")

        async with trio.open_nursery() as units:
            units.start_soon(mark_start)
            await body(units, stats, count)
            units.cancel_scope.deadline = trio.current_time() + bounds.drain
        ticks.cancel_scope.cancel()
    end = trio.current_time()
    cpu = time.process_time() - cpu0 if not math.isnan(cpu0) else 0.0
    if on_mark is not None:
        on_mark("end")
    return stats, Window(seconds=max(1e-9, end - stats.start), cpu_seconds=cpu, units_started=count[0])


async def closed_loop(unit: Unit, users: int, bounds: Bounds, *, on_tick: Tick | None = None,
                      on_mark: Callable[[str], None] | None = None) -> tuple[Stats, Window]:
    """``users`` tasks, each running units back to back until the time or the unit budget is
    spent. A unit's latency runs from its actual start."""
    async def body(nursery: trio.Nursery, stats: Stats, started: list[int]) -> None:
        end = stats.start + bounds.duration
        budget = bounds.max_units

        done = trio.Event()
        running = [users]

        async def user(index: int) -> None:
            try:
                while trio.current_time() < end and (budget is None or started[0] < budget):
                    started[0] += 1
                    t0 = trio.current_time()
                    await _run_unit(unit, index, stats, t0 >= stats.start, t0)
            finally:
                running[0] -= 1
                if not running[0]:
                    done.set()

        for index in range(users):
            nursery.start_soon(user, index)
        # back at the end of the time (units still out then drain), or earlier when every user
        # has stopped (the unit budget is spent)
        with trio.move_on_at(end):
            await done.wait()

    return await _drive(body, bounds, on_tick, on_mark)


async def open_loop(unit: Unit, rate: float, bounds: Bounds, *, max_in_flight: int = 1000,
                    users: int | None = None, on_tick: Tick | None = None,
                    on_mark: Callable[[str], None] | None = None) -> tuple[Stats, Window]:
    """Units started at ``rate`` per second on the :func:`schedule`; at most ``max_in_flight`` at
    once (past that a unit waits for a slot, and the wait counts in its latency). Unit ``i`` is
    given user ``i % users`` (``users`` defaults to ``max_in_flight``)."""
    async def body(nursery: trio.Nursery, stats: Stats, started: list[int]) -> None:
        slots = trio.CapacityLimiter(max_in_flight)
        origin = stats.start - bounds.warmup
        offsets = schedule(rate, bounds.warmup + bounds.duration, bounds.max_units)
        pool = users or max_in_flight

        async def one(index: int, intended: float) -> None:
            if intended >= stats.start:
                stats.start_lag.record(trio.current_time() - intended)
            try:
                await _run_unit(unit, index % pool, stats, intended >= stats.start, intended)
            finally:
                slots.release_on_behalf_of(index)

        for index, offset in enumerate(offsets):
            intended = origin + offset
            await trio.sleep_until(intended)
            await slots.acquire_on_behalf_of(index)
            started[0] += 1
            nursery.start_soon(one, index, intended)

    return await _drive(body, bounds, on_tick, on_mark)
