"""A relay woken by its writes (``Relay(bell=..., idle_poll=...)``, issue 15): idle it does not
scan, a ring brings a scan once the writer's grace is over, and the intents it saw too young or
retried later bring it back when they are due, all well before the slow safety poll."""

from __future__ import annotations

import trio

from workup.ids import now_ms
from workup.problems import ProblemError
from workup.runtime.outbox import Bell, Intent

from .test_outbox import Rows, Rt, _relay

IDLE = 60.0   # the safety poll: no test here may wait for it
GRACE_MS = 100


class CountedRows(Rows):
    def __init__(self) -> None:
        super().__init__()
        self.scans = 0
        self.hidden_until = 0.0     # trio time before which no row is claimable (a store's hold)

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        self.scans += 1
        if trio.current_time() < self.hidden_until:
            return []
        return await super().pending(kind, limit)


def _woken(rows: Rows, bell: Bell, attempted: list[float], fail_first: bool = False):
    relay, _, _ = _relay(rows, bell=lambda deps: bell, idle_poll=IDLE, grace_ms=GRACE_MS)

    @relay.step("k")
    async def step(rt, intent: Intent) -> None:
        attempted.append(trio.current_time())
        if fail_first and len(attempted) == 1:
            raise ProblemError(503, "down")

    return relay


async def test_idle_it_scans_once_and_a_ring_brings_one_scan_after_the_grace():
    rows, bell, attempted = CountedRows(), Bell(), []
    relay = _woken(rows, bell, attempted)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(relay.run, Rt(None))
        await trio.sleep(0.5)
        assert rows.scans == 1                          # no poll while nothing is written
        await rows.add("k", "a", now_ms())
        rung = trio.current_time()
        bell.ring()
        with trio.fail_after(5):
            while not attempted:
                await trio.sleep(0.01)
        assert attempted[0] - rung >= GRACE_MS / 1000 * 0.9   # the writer's grace was left to it
        await trio.sleep(0.3)
        assert not rows.rows and rows.scans <= 4
        nursery.cancel_scope.cancel()


async def _until_done(relay, rows: Rows, timeout: float) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(relay.run, Rt(None))
        with trio.fail_after(timeout):
            while rows.rows:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()


async def test_an_intent_seen_too_young_is_attempted_when_due_without_a_ring():
    rows, bell, attempted = CountedRows(), Bell(), []
    await rows.add("k", "a", now_ms())
    await _until_done(_woken(rows, bell, attempted), rows, 5)
    assert len(attempted) == 1


async def test_a_failed_attempt_is_retried_when_due_not_at_the_safety_poll():
    rows, bell, attempted = CountedRows(), Bell(), []
    await rows.add("k", "a", 0)
    await _until_done(_woken(rows, bell, attempted, fail_first=True), rows, 10)
    assert len(attempted) == 2


async def test_a_relay_whose_rows_are_held_scans_again_when_the_hold_of_earlier_rows_is_over():
    """``Relay(held=...)`` (payments: a writer delivers its own rows, held from every relay
    meanwhile): a row a killed predecessor left, still held when this relay starts, is taken once
    the hold is over, long before the safety poll, with no write or ring to wake it."""
    rows, bell, attempted = CountedRows(), Bell(), []
    relay, _, _ = _relay(rows, bell=lambda deps: bell, idle_poll=IDLE, held=0.3)

    @relay.step("k")
    async def step(rt, intent: Intent) -> None:
        attempted.append(trio.current_time())

    rows.hidden_until = trio.current_time() + 0.3     # what the store's hold does: not claimable yet
    await rows.add("k", "left", now_ms())
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(relay.run, Rt(None))
        with trio.fail_after(5):
            while not attempted:
                await trio.sleep(0.01)
        assert 0.3 * 0.9 <= attempted[0] - started < IDLE
        assert rows.scans == 2                          # at the start, then at the hold's end
        nursery.cancel_scope.cancel()
