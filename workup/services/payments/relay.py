"""The outbox relay: delivers what a committed transaction queued (``contracts.MarkMilestonePaid``
calls and ``payment.*`` events) until it is acknowledged.

The rows were written in the same transaction as the payment, so a process killed between the
commit and the delivery loses nothing: the next relay (this process's on restart, or any other
instance's) claims them. Receivers are idempotent, so a delivery repeated after a crash between
"delivered" and "deleted" is harmless. Claims are leased (``SKIP LOCKED`` on PostgreSQL), so
several instances share the work without delivering a row twice in the normal case.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import msgspec
import trio

from ...messages.contracts import MarkMilestonePaid
from ...problems import ProblemError
from ...runtime.service import Runtime
from .deps import PaymentsDeps
from .ops import OutboxItem

__all__ = ["relay_outbox", "purge_idempotency_keys", "next_step", "deliver_due"]

log = logging.getLogger("workup.payments.outbox")

CALLS: dict[str, type] = {"contracts.MarkMilestonePaid": MarkMilestonePaid}
BATCH = 20
LEASE = 30.0          # seconds a claimed row is left to its relay
POLL = 1.0            # seconds between looks when nobody rang
CALL_TIMEOUT = 5.0
MAX_DELAY = 60.0
KEEP_KEYS = dt.timedelta(hours=48)     # idempotency answers are kept ≥ 24 h (API.md): 48 h
PURGE_EVERY = 3600.0


class _Event(msgspec.Struct):
    recipients: list[str]
    data: dict[str, str]


def next_step(error: BaseException | None, attempts: int) -> tuple[str, float]:
    """``("done", 0)``, ``("retry", delay)`` or ``("dead", 0)`` after one delivery attempt.
    A receiver's 4xx (other than timeout/too-many) will not change on retry: parked as DEAD and
    logged; anything else (no responder 503, timeout 504, 5xx, transport errors) is retried with
    exponential backoff."""
    if error is None:
        return "done", 0.0
    if isinstance(error, ProblemError) and 400 <= error.status < 500 and error.status not in (408, 429):
        return "dead", 0.0
    return "retry", min(MAX_DELAY, 0.5 * 2 ** attempts)


async def _deliver(rt: Runtime[Any], item: OutboxItem) -> None:
    if item.kind == "call":
        request = msgspec.json.decode(item.payload, type=CALLS[item.name])
        await rt.call(item.name, request, timeout=CALL_TIMEOUT)
    else:
        event = msgspec.json.decode(item.payload, type=_Event)
        await rt.emit(item.name, event.recipients, event.data)


async def _attempt(rt: Runtime[Any], deps: PaymentsDeps, item: OutboxItem) -> None:
    error: BaseException | None = None
    try:
        await _deliver(rt, item)
    except Exception as exc:          # noqa: BLE001 - every failure is judged by next_step
        error = exc
    step, delay = next_step(error, item.attempts)
    if step == "done":
        await deps.store.outbox_done(item.seq)
    elif step == "dead":
        log.error("outbox %s %s refused for good: %s", item.seq, item.name, error)
        await deps.store.outbox_dead(item.seq, str(error))
    else:
        log.warning("outbox %s %s not delivered (attempt %d), retrying in %.1fs: %s",
                    item.seq, item.name, item.attempts + 1, delay, error)
        await deps.store.outbox_retry(item.seq, delay, str(error))


async def deliver_due(rt: Runtime[Any], deps: PaymentsDeps, lease: float = LEASE) -> int:
    """Claim and deliver one batch of due rows (concurrently); returns how many were claimed."""
    items = await deps.store.claim_outbox(BATCH, lease)
    async with trio.open_nursery() as n:
        for item in items:
            n.start_soon(_attempt, rt, deps, item)
    return len(items)


async def relay_outbox(rt: Runtime[PaymentsDeps]) -> None:
    """Background task of every payments process."""
    deps = rt.deps
    while True:
        deps.outbox_bell = trio.Event()     # a ring from now on wakes the wait below
        if await deliver_due(rt, deps) == BATCH:
            continue
        with trio.move_on_after(POLL):
            await deps.outbox_bell.wait()


async def purge_idempotency_keys(rt: Runtime[PaymentsDeps]) -> None:
    while True:
        removed = await rt.deps.store.purge_idempotency(KEEP_KEYS)
        if removed:
            log.info("purged %d idempotency keys older than %s", removed, KEEP_KEYS)
        await trio.sleep(PURGE_EVERY)
