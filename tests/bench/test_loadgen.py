"""The load generator's pure parts: the open-loop schedule, the histogram maths, the per-second
timeline, and both loops on trio's virtual clock (coordinated omission corrected in the open
loop, not in the closed one)."""

from __future__ import annotations

import math

import pytest
import trio

from workup.bench.loadgen import Bounds, Histogram, Recorder, Stats, UnitFailed, closed_loop, open_loop, schedule


# --- schedule ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rate, seconds, max_units, expected", [
    (1, 3, None, [0, 1, 2]),
    (2, 2, None, [0, 0.5, 1, 1.5]),
    (0.5, 3, None, [0, 2]),                  # slower than one per second
    (3, 10, None, [i / 3 for i in range(30)]),  # not 31 from a rounding error
    (10, 1, 4, [0, 0.1, 0.2, 0.3]),          # the unit budget wins
    (10, 0.05, None, [0]),                   # a window shorter than one interval still starts one
    (0, 5, None, []),
    (5, 0, None, []),
])
def test_schedule(rate: float, seconds: float, max_units: int | None, expected: list[float]) -> None:
    assert schedule(rate, seconds, max_units) == pytest.approx(expected)


def test_schedule_is_evenly_spaced_at_a_high_rate() -> None:
    offsets = schedule(1000, 2)
    assert len(offsets) == 2000
    gaps = {round(b - a, 9) for a, b in zip(offsets, offsets[1:])}
    assert gaps == {0.001}


# --- histogram --------------------------------------------------------------------------------

def test_percentiles_of_a_uniform_series_within_hdr_precision() -> None:
    h = Histogram()
    for ms in range(1, 1001):                # 1..1000 ms
        h.record(ms / 1000)
    assert h.count == 1000
    for q, want in [(50, 500), (90, 900), (99, 990), (100, 1000)]:
        assert h.percentile_ms(q) == pytest.approx(want, rel=1e-3)
    s = h.summary()
    assert s.count == 1000 and s.max_ms == pytest.approx(1000, rel=1e-3)
    assert s.mean_ms == pytest.approx(500.5, rel=1e-3)


@pytest.mark.parametrize("q, want", [(0, 10), (37, 10), (38, 20), (50, 20), (62, 20), (63, 30), (75, 30),
                                     (87, 30), (88, 40), (100, 40)])
def test_percentile_rank_is_rounded_half_up_for_few_values(q: float, want: float) -> None:
    # HdrHistogram's rule: the smallest value whose cumulative count reaches q% of n rounded
    # half up, at least 1 (p37 of 4 values: 1.48 -> the 1st; p38: 1.52 -> the 2nd)
    h = Histogram()
    for ms in (10, 20, 30, 40):
        h.record(ms / 1000)
    assert h.percentile_ms(q) == pytest.approx(want, rel=1e-3)


def test_empty_histogram_says_none() -> None:
    h = Histogram()
    assert h.count == 0 and h.percentile_ms(50) is None
    s = h.summary()
    assert s.count == 0 and s.p99_ms is None and s.max_ms is None


def test_values_out_of_range_are_clamped_not_lost() -> None:
    h = Histogram()
    h.record(0)             # below 1 µs
    h.record(-1)            # a clock step backwards
    h.record(10_000)        # above 10 min
    assert h.count == 3
    assert h.percentile_ms(0) == pytest.approx(0.001, rel=1e-3)
    assert h.summary().max_ms == pytest.approx(600_000, rel=1e-3)


def test_add_merges_counts() -> None:
    a, b = Histogram(), Histogram(digits=2)
    for _ in range(99):
        a.record(0.001)
    b.record(1.0)
    a.add(b)
    assert a.count == 100
    assert a.percentile_ms(99) == pytest.approx(1, rel=1e-2)
    assert a.percentile_ms(100) == pytest.approx(1000, rel=1e-2)


def test_encode_is_hdr_base64() -> None:
    from hdrh.histogram import HdrHistogram
    h = Histogram()
    h.record(0.0123)
    decoded = HdrHistogram.decode(h.encode())
    assert decoded.get_total_count() == 1
    assert decoded.get_value_at_percentile(50) == pytest.approx(12300, rel=1e-3)


# --- stats and timeline -----------------------------------------------------------------------

def test_stats_count_by_step_and_by_second() -> None:
    stats = Stats(start=100.0)
    stats.request("a", 0.010, None, now=100.2)
    stats.request("a", 0.020, None, now=100.9)
    stats.request("a", 0.030, "HTTP 500", now=101.5)
    stats.request("b", 0.040, None, now=103.0)
    stats.unit(0.5, None, now=101.0)
    stats.unit(0.5, "search", now=102.0)
    assert stats.requests == 4 and stats.errors == 1
    assert stats.steps["a"].ok == 2 and stats.steps["a"].errors == {"HTTP 500": 1}
    assert stats.units_ok == 1 and stats.unit_errors == {"search": 1}
    assert [s.requests for s in stats.timeline] == [2, 1, 0, 1]
    assert [s.errors for s in stats.timeline] == [0, 1, 0, 0]
    assert [s.units for s in stats.timeline] == [0, 1, 1, 0]
    # the last 5 whole seconds before 103.5: seconds 0..2 (the current one is not complete)
    rate, errors, recent = stats.recent(103.5)
    assert rate == pytest.approx(3 / 3) and errors == 1 and recent.count == 2


def test_recorder_records_only_measured_units() -> None:
    stats = Stats(start=0.0)
    Recorder(stats, measured=False).request("x", 0.1)
    Recorder(None, measured=True).request("x", 0.1)
    assert stats.requests == 0


# --- the loops, on the virtual clock ----------------------------------------------------------

def _unit(seconds: float, log: list[int] | None = None):
    async def unit(user: int, rec: Recorder) -> None:
        t0 = trio.current_time()
        await trio.sleep(seconds)
        rec.request("work", trio.current_time() - t0)
        if log is not None:
            log.append(user)
    return unit


async def test_closed_loop_runs_back_to_back_until_the_time_is_spent(autojump_clock: trio.abc.Clock) -> None:
    stats, window = await closed_loop(_unit(0.5), users=2, bounds=Bounds(duration=2.0))
    # each user starts at 0, 0.5, 1.0, 1.5: 4 each; latency is the service time only
    assert window.units_started == 8 and stats.units_ok == 8
    assert stats.unit_latency.percentile_ms(100) == pytest.approx(500, rel=1e-3)
    assert window.seconds == pytest.approx(2.0, abs=1e-6)


async def test_closed_loop_stops_at_the_unit_budget(autojump_clock: trio.abc.Clock) -> None:
    stats, window = await closed_loop(_unit(0.1), users=3, bounds=Bounds(duration=60, max_units=5))
    assert window.units_started == 5 and stats.units_ok == 5
    assert window.seconds < 1


async def test_closed_loop_warmup_units_are_not_measured(autojump_clock: trio.abc.Clock) -> None:
    stats, window = await closed_loop(_unit(0.5), users=1, bounds=Bounds(duration=1.0, warmup=1.0))
    assert window.units_started == 4 and stats.units_ok == 2 and stats.requests == 2


async def test_open_loop_counts_from_the_intended_start(autojump_clock: trio.abc.Clock) -> None:
    # 4 per second for 2 s, but one at a time and each takes 0.5 s: the system keeps half the
    # pace, so unit i waits 0.25*i s for its slot. A closed loop would report 500 ms throughout.
    stats, window = await open_loop(_unit(0.5), rate=4, bounds=Bounds(duration=2.0), max_in_flight=1)
    assert window.units_started == 8 and stats.units_ok == 8
    assert stats.steps["work"].latency.percentile_ms(100) == pytest.approx(500, rel=1e-3)   # service time
    assert stats.unit_latency.percentile_ms(0) == pytest.approx(500, rel=1e-3)
    assert stats.unit_latency.percentile_ms(100) == pytest.approx(500 + 7 * 250, rel=1e-3)


async def test_open_loop_keeps_the_rate_when_the_system_keeps_up(autojump_clock: trio.abc.Clock) -> None:
    users: list[int] = []
    stats, window = await open_loop(_unit(0.05, users), rate=10, bounds=Bounds(duration=1.0), users=3)
    assert window.units_started == 10 and stats.units_ok == 10
    assert stats.unit_latency.percentile_ms(100) == pytest.approx(50, rel=1e-3)
    assert users == [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]


async def test_failed_units_are_counted_by_step_and_do_not_stop_the_run(autojump_clock: trio.abc.Clock) -> None:
    async def unit(user: int, rec: Recorder) -> None:
        await trio.sleep(0.1)
        if user == 1:
            rec.request("pay", 0.1, "HTTP 409")
            raise UnitFailed("pay", "HTTP 409")
        if user == 2:
            raise RuntimeError("bug")

    stats, window = await closed_loop(unit, users=3, bounds=Bounds(duration=0.3))
    assert stats.unit_errors == {"pay": 3, "RuntimeError": 3}
    assert stats.units_ok == 3 and stats.errors == 3


async def test_units_still_running_after_the_drain_are_cancelled(autojump_clock: trio.abc.Clock) -> None:
    stats, window = await closed_loop(_unit(100), users=2, bounds=Bounds(duration=1, drain=2))
    assert window.units_started == 2 and stats.units_ok == 0 and not stats.unit_errors
    assert window.seconds == pytest.approx(3, abs=1e-6)


async def test_ticks_and_marks(autojump_clock: trio.abc.Clock) -> None:
    ticks: list[int] = []
    marks: list[str] = []
    await closed_loop(_unit(0.25), users=1, bounds=Bounds(duration=3.5),
                      on_tick=lambda stats, now, started: ticks.append(started), on_mark=marks.append)
    assert marks == ["start", "end"]
    assert len(ticks) == 3 and ticks == sorted(ticks) and not math.isnan(ticks[-1])


async def test_open_loop_records_how_late_units_started(autojump_clock: trio.abc.Clock) -> None:
    # one slot, units of 0.5 s at 4/s: unit i starts 0.25*i s late
    stats, _ = await open_loop(_unit(0.5), rate=4, bounds=Bounds(duration=1.0), max_in_flight=1)
    assert stats.start_lag.count == 4
    assert stats.start_lag.percentile_ms(100) == pytest.approx(750, rel=1e-3)
    closed, _ = await closed_loop(_unit(0.5), users=1, bounds=Bounds(duration=1.0))
    assert closed.start_lag.count == 0
