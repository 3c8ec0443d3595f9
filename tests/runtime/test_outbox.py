"""The outbox mechanism of ``workup.runtime.outbox``: the retry/dead-letter policy, the scan pace,
the in-process retry schedule, the relay loop over a fake store, and event intents."""

from __future__ import annotations

from typing import Any, Sequence

import msgspec
import pytest
import trio
import trio.testing

from workup.problems import ProblemError
from workup.runtime.outbox import (
    EVENT, JITTER, MAX_BACKOFF, MAX_DELAY, POLL_INTERVAL, TRANSIENT_DELAY, Bell, EventCheck, EventIntent, Intent, Relay, RetryLater,
    RowOutbox, Schedule, drop_event, event_intent, event_step, intend_event, next_step, next_wait, publish_event, transient)
from workup.transport import DeadlineExceeded, NoResponder
from workup.runtime.service import Service


# --- next_step: every branch ------------------------------------------------------------------

def test_success_is_done():
    assert next_step(None, 0) == ("done", 0.0)
    assert next_step(None, 7) == ("done", 0.0)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 422, 451])
def test_a_final_4xx_is_dead(status):
    assert next_step(ProblemError(status, "no"), 0) == ("dead", 0.0)
    assert next_step(ProblemError(status, "no"), 9) == ("dead", 0.0)


@pytest.mark.parametrize("error", [ProblemError(408, "late"), ProblemError(429, "slow down"),
                                   ProblemError(500, "bug"), ProblemError(503, "down"), ProblemError(504, "late"),
                                   RuntimeError("connection reset"), RetryLater("cache away")])
def test_everything_else_is_retried_with_exponential_backoff(error):
    assert [next_step(error, n) for n in range(4)] == [("retry", 0.5), ("retry", 1.0), ("retry", 2.0), ("retry", 4.0)]


def test_the_retry_delay_is_bounded():
    assert next_step(ProblemError(500, "bug"), 7) == ("retry", MAX_DELAY)
    assert next_step(ProblemError(500, "bug"), 1000) == ("retry", MAX_DELAY)
    assert next_step(RuntimeError("connection reset"), 5000) == ("retry", MAX_DELAY)


_AWAY = [ProblemError(408, "late"), ProblemError(429, "slow down"), ProblemError(502, "bad gateway"),
         ProblemError(503, "down"), ProblemError(504, "late"), RetryLater("cache away"), DeadlineExceeded(),
         NoResponder(), ConnectionResetError(), OSError("unreachable"), trio.BrokenResourceError(),
         trio.ClosedResourceError(), trio.TooSlowError()]


@pytest.mark.parametrize("error", _AWAY)
def test_a_peer_that_is_away_is_retried_within_a_few_seconds(error):
    # a restarting worker is back within seconds: pay -> milestone PAID waited over a minute
    assert transient(error)
    assert [next_step(error, n)[1] for n in range(8)] == [0.5, 1.0, 2.0, TRANSIENT_DELAY, TRANSIENT_DELAY,
                                                          TRANSIENT_DELAY, TRANSIENT_DELAY, TRANSIENT_DELAY]
    assert next_step(error, 10_000) == ("retry", TRANSIENT_DELAY)
    assert TRANSIENT_DELAY * (1 + JITTER) <= 5.0   # "a few seconds", jitter included


@pytest.mark.parametrize("error", [ProblemError(500, "bug"), ProblemError(501, "no"), RuntimeError("bug"),
                                   KeyError("x"), ValueError("bad")])
def test_a_failure_that_is_not_an_absence_keeps_backing_off_to_the_long_ceiling(error):
    assert not transient(error)
    assert [next_step(error, n)[1] for n in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, MAX_DELAY]


@pytest.mark.parametrize("error", [ProblemError(503, "down"), ProblemError(500, "bug")])
@pytest.mark.parametrize("attempts", [0, 3, 9])
def test_jitter_spreads_retries_within_its_bounds(error, attempts):
    exact = next_step(error, attempts)[1]
    low, high = next_step(error, attempts, 0.0)[1], next_step(error, attempts, 1.0)[1]
    assert low == pytest.approx(exact * (1 - JITTER)) and high == pytest.approx(exact * (1 + JITTER))
    assert next_step(error, attempts, -3.0)[1] == low and next_step(error, attempts, 7.0)[1] == high
    delays = [next_step(error, attempts, j / 10)[1] for j in range(11)]
    assert delays == sorted(delays) and len(set(delays)) == 11
    # the cap holds with jitter, so a dead peer is tried at most once per TRANSIENT_DELAY * (1 - JITTER)
    assert all(low <= d <= high for d in delays)


def test_final_refusals_and_success_ignore_jitter():
    assert next_step(ProblemError(404, "gone"), 3, 0.0) == ("dead", 0.0)
    assert next_step(None, 3, 1.0) == ("done", 0.0)


# --- next_wait --------------------------------------------------------------------------------

def test_scans_keep_the_poll_pace_while_deliveries_succeed():
    assert next_wait(False, MAX_BACKOFF) == POLL_INTERVAL
    assert next_wait(False, 0.3, poll=0.1) == 0.1


def test_scans_back_off_while_deliveries_fail():
    assert next_wait(True, POLL_INTERVAL) == 2 * POLL_INTERVAL
    assert next_wait(True, MAX_BACKOFF) == MAX_BACKOFF
    assert next_wait(True, 0.1, poll=0.1) == 0.2
    assert next_wait(True, 0.0, poll=0.1) == 0.1
    assert next_wait(True, 100.0, poll=30.0) == 30.0    # a slow poll is never shortened


# --- Schedule ---------------------------------------------------------------------------------

def test_schedule_counts_attempts_and_holds_back_until_due(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr("workup.runtime.outbox.time.monotonic", lambda: clock[0])
    s = Schedule()
    first = s.intent("k", "a", 5)
    assert first == Intent(kind="k", item="a", key="a", attempts=0, created_ms=5)
    s.retry(first, 2.0)
    assert s.intent("k", "a") is None
    clock[0] += 2.0
    again = s.intent("k", "a")
    assert again is not None and again.attempts == 1
    s.forget(again)
    assert s.intent("k", "a").attempts == 0
    s.dead(again)
    assert s.intent("k", "a") is None
    assert s.intent("other", "a") is not None


# --- the relay loop over a fake store ---------------------------------------------------------

class Rows:
    """``storage.Outbox``'s shape, in memory."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], int] = {}
        self.forgotten: list[tuple[str, str]] = []

    async def add(self, kind: str, item: str, now: int) -> None:
        self.rows[(kind, item)] = now

    async def add_all(self, intents: Sequence[tuple[str, str]], now: int) -> None:
        for kind, item in intents:
            self.rows[(kind, item)] = now

    def forget(self, kind: str, item: str) -> None:   # the real one deletes within a moment
        self.forgotten.append((kind, item))
        self.rows.pop((kind, item), None)

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        return sorted((i, t) for (k, i), t in self.rows.items() if k == kind)[:limit]

    async def done(self, kind: str, item: str, created_ms: int = 0) -> None:
        self.rows.pop((kind, item), None)


class Rt:
    def __init__(self, deps: Any) -> None:
        self.deps = deps
        self.emitted: list[tuple[str, list[str], dict[str, str], str | None]] = []
        self.fail_emit = False

    async def emit(self, type: str, recipients: Sequence[str], data: dict[str, str], *, at: str | None = None) -> None:
        if self.fail_emit:
            raise RuntimeError("broker away")
        self.emitted.append((type, list(recipients), dict(data), at))


def _relay(rows: Rows, **kw: Any) -> tuple[Relay[Any], RowOutbox, Service[Any]]:
    svc: Service[Any] = Service("svc")
    outbox = RowOutbox(rows)
    relay: Relay[Any] = Relay(outbox=lambda deps: outbox, **kw)
    svc.background_task(relay.run)
    return relay, outbox, svc


async def test_relay_runs_as_a_background_task_and_steps_register_once():
    relay, _, svc = _relay(Rows())
    assert svc.background == [relay.run]

    @relay.step("a")
    async def a(rt, intent): ...
    with pytest.raises(ValueError):
        relay.step("a")(a)


async def test_one_scan_applies_the_policy():
    rows = Rows()
    for item in ("ok", "down", "refused"):
        await rows.add("k", item, 0)
    relay, outbox, _ = _relay(rows)
    seen: list[str] = []

    @relay.step("k")
    async def step(rt, intent: Intent) -> None:
        seen.append(intent.item)
        if intent.item == "down":
            raise ProblemError(503, "down")
        if intent.item == "refused":
            raise ProblemError(404, "gone")

    assert await relay.once(Rt(None), outbox) == (3, True)
    assert sorted(seen) == ["down", "ok", "refused"]
    assert sorted(i for _, i in rows.rows) == ["down", "refused"]    # done is deleted, the rest kept
    assert await outbox.claim("k", 10) == []                          # retry not due yet; dead parked
    assert await relay.once(Rt(None), outbox) == (0, False)


async def test_kinds_are_scanned_in_registration_order_and_ordered_ones_one_at_a_time():
    rows = Rows()
    for kind, item in (("call", "c1"), ("event", "e1"), ("event", "e2"), ("event", "e3")):
        await rows.add(kind, item, 0)
    relay, outbox, _ = _relay(rows)
    log: list[str] = []

    @relay.step("event", ordered=True)
    async def event(rt, intent: Intent) -> None:
        log.append(f"start {intent.item}")
        await trio.sleep(0.01 * (4 - int(intent.item[1])))    # later items finish sooner if concurrent
        log.append(f"end {intent.item}")

    @relay.step("call")
    async def call(rt, intent: Intent) -> None:
        log.append(f"call {intent.item}")

    assert await relay.once(Rt(None), outbox) == (4, False)
    assert log == ["start e1", "end e1", "start e2", "end e2", "start e3", "end e3", "call c1"]


async def test_held_intents_never_crowd_due_ones_out_of_a_batch():
    rows = Rows()
    outbox = RowOutbox(rows)
    for n in range(3):
        await rows.add("k", f"held{n}", 0)
    await rows.add("k", "z-due", 0)
    for intent in await outbox.claim("k", 3):
        await outbox.retry(intent, 60.0, "down") if intent.item != "held2" else await outbox.dead(intent, "no")
    assert [i.item for i in await outbox.claim("k", 3)] == ["z-due"]


async def test_state_of_intents_finished_elsewhere_is_forgotten():
    rows = Rows()
    outbox = RowOutbox(rows)
    await rows.add("k", "a", 0)
    [a] = await outbox.claim("k", 5)
    await outbox.retry(a, 60.0, "down")
    await rows.done("k", "a")                 # the handler finished it meanwhile
    assert await outbox.claim("k", 5) == []
    assert outbox.schedule.held("k") == 0
    await rows.add("k", "a", 0)               # a new intent for the same item starts afresh
    assert [(i.item, i.attempts) for i in await outbox.claim("k", 5)] == [("a", 0)]


async def test_young_intents_belong_to_a_live_handler():
    rows = Rows()
    await rows.add("k", "young", 2**62)
    relay, outbox, _ = _relay(rows, grace_ms=1000)

    @relay.step("k")
    async def step(rt, intent): raise AssertionError("attempted too early")

    assert await relay.once(Rt(None), outbox) == (0, False)
    assert rows.rows


async def test_run_wakes_on_the_bell_and_survives_a_failing_scan():
    rows = Rows()
    bell = Bell()
    relay, _, _ = _relay(rows, poll=60.0, bell=lambda deps: bell)
    done = trio.Event()
    calls = [0]
    real_pending = rows.pending

    async def flaky_pending(kind: str, limit: int = 100):
        calls[0] += 1
        if calls[0] == 1:
            raise RuntimeError("store away")
        return await real_pending(kind, limit)
    rows.pending = flaky_pending  # type: ignore[method-assign]

    @relay.step("k")
    async def step(rt, intent): done.set()

    async with trio.open_nursery() as n:
        n.start_soon(relay.run, Rt(None))
        await trio.testing.wait_all_tasks_blocked()
        await rows.add("k", "x", 0)
        bell.ring()                       # the failed scan's backoff (2 × 60 s) is cut short
        with trio.fail_after(5):
            await done.wait()
        n.cancel_scope.cancel()
    assert calls[0] >= 2


async def test_run_retries_an_absent_peer_when_due_not_at_the_backed_off_scan_pace():
    """The scans back off to 2 x poll (20 s here) after a failure; an intent the loop retried is
    nevertheless tried again when its own (short, transient) delay is over."""
    rows = Rows()
    await rows.add("k", "x", 0)
    relay, _, _ = _relay(rows, poll=10.0)
    attempts: list[float] = []
    done = trio.Event()

    @relay.step("k")
    async def step(rt, intent):
        attempts.append(trio.current_time())
        if len(attempts) < 3:
            raise ProblemError(503, "the peer is restarting")
        done.set()

    async with trio.open_nursery() as n:
        n.start_soon(relay.run, Rt(None))
        with trio.fail_after(1.5 * (1 + JITTER) + 2):   # 0.5 s + 1 s of delays, jittered, plus slack
            await done.wait()
        n.cancel_scope.cancel()
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert len(attempts) == 3 and gaps[0] >= 0.5 * (1 - JITTER) - 0.05 and gaps[1] >= 1.0 * (1 - JITTER) - 0.05


# --- event intents ----------------------------------------------------------------------------

async def test_an_event_is_published_then_dropped():
    rows, rt = Rows(), Rt(None)
    event = await intend_event(rows, "thing.done", ["u1"], {"thingId": "t"}, EventCheck("thing", "t", ("DONE",)))
    assert [k for k, _ in rows.rows] == [EVENT]
    assert await publish_event(rt, rows, event)
    assert rt.emitted == [("thing.done", ["u1"], {"thingId": "t"}, event.at)] and not rows.rows


async def test_a_step_s_other_intents_are_written_with_the_event_s():
    rows = Rows()
    event = await intend_event(rows, "thing.done", ["u1"], {}, EventCheck("thing", "t", ("DONE",)),
                               also=[("pay", "t")])
    assert sorted(k for k, _ in rows.rows) == [EVENT, "pay"]
    _, item = event_intent(event.type, event.recipients, event.data, event.check, 0)
    assert msgspec.json.decode(item)["type"] == "thing.done"


async def test_a_failed_publish_leaves_the_intent_to_the_relay():
    rows, rt = Rows(), Rt(None)
    event = await intend_event(rows, "thing.done", ["u1"], {}, EventCheck("thing", "t", ("DONE",)))
    rt.fail_emit = True
    assert not await publish_event(rt, rows, event)
    assert rows.rows
    await drop_event(rows, event)
    assert not rows.rows


async def test_the_event_step_publishes_only_what_happened():
    status = {"t1": "DONE", "t2": "OPEN"}

    async def status_of(rt, entity, id):
        return status.get(id) if entity == "thing" else None

    step, rt = event_step(status_of), Rt(None)
    for tid in ("t1", "t2", "t3"):
        item = msgspec.json.encode(EventIntent(type="thing.done", recipients=["u"], data={"id": tid}, at="T",
                                               check=EventCheck("thing", tid, ("DONE",)))).decode()
        await step(rt, Intent(kind=EVENT, item=item))
    assert rt.emitted == [("thing.done", ["u"], {"id": "t1"}, "T")]


async def test_an_event_written_with_its_change_has_no_check_and_may_keep_its_type_apart():
    rt = Rt(None)
    await event_step()(rt, Intent(kind=EVENT, name="payment.paid", item='{"recipients":["f"],"data":{"a":"b"}}'))
    assert rt.emitted == [("payment.paid", ["f"], {"a": "b"}, None)]


async def test_an_undecodable_event_is_dead():
    with pytest.raises(ProblemError) as info:
        await event_step()(Rt(None), Intent(kind=EVENT, item="{not json"))
    assert next_step(info.value, 0) == ("dead", 0.0)
