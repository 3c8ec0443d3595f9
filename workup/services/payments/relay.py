"""The payments outbox: delivers what a committed transaction queued (``contracts.MarkMilestonePaid``
calls and ``payment.*`` events) until it is acknowledged.

The rows were written in the same transaction as the payment, so a process killed between the
commit and the delivery loses nothing: the next relay (this process's on restart, or any other
instance's) claims them. Receivers are idempotent, so a delivery repeated after a crash between
"delivered" and "deleted" is harmless. Claims are leased (``SKIP LOCKED`` on PostgreSQL), so
several instances share the work without delivering a row twice in the normal case. The relay is
woken by the handler that wrote the rows and otherwise scans every ``SAFETY_POLL`` seconds (for
the rows of an instance that died). The loop and
its retry/dead-letter policy are :mod:`workup.runtime.outbox`'s; :class:`SqlOutbox` adapts the
``outbox`` table to its port (each row keeps its attempts, next due time and last error; a dead
one stays, ``status = 'DEAD'``, for an operator).
"""

from __future__ import annotations

import datetime as dt
import logging

import msgspec
import trio

from ...messages.contracts import MarkMilestonePaid
from ...runtime.outbox import EVENT, SAFETY_POLL, Intent, Relay, event_step
from ...runtime.service import Runtime
from .deps import PaymentsDeps
from .store import SqlStore

__all__ = ["RELAY", "SqlOutbox", "purge_idempotency_keys"]

log = logging.getLogger("workup.payments.outbox")

CALL = "call"
CALLS: dict[str, type] = {"contracts.MarkMilestonePaid": MarkMilestonePaid}
LEASE = 30.0          # seconds a claimed row is left to its relay
CALL_TIMEOUT = 5.0
KEEP_KEYS = dt.timedelta(hours=48)     # idempotency answers are kept ≥ 24 h (docs/api.md): 48 h
PURGE_EVERY = 3600.0


class SqlOutbox:
    """The port over the ``outbox`` table of :class:`SqlStore` (row ``seq`` is the intent's key).

    One statement claims the due rows of EVERY kind: the relay asks for its kinds one after the
    other in each scan, so the first claim of a scan keeps the other kinds' rows (leased like
    them) for the claims that follow, a statement and a thread hop saved per kind. Kept rows
    older than half the lease are let go (to be claimed again once it ends) rather than handed
    out late."""

    def __init__(self, store: SqlStore, lease: float = LEASE) -> None:
        self.store = store
        self.lease = lease
        self._kept: dict[str, list[Intent]] = {}
        self._kept_at = 0.0

    async def claim(self, kind: str, limit: int) -> list[Intent]:
        if kind in self._kept and trio.current_time() - self._kept_at < self.lease / 2:
            return self._kept.pop(kind)
        self._kept = {}
        claimed = await self.store.claim_outbox(limit, self.lease)
        self._kept_at = trio.current_time()
        for i in claimed:
            self._kept.setdefault(i.kind, []).append(
                Intent(kind=i.kind, item=i.payload.decode(), key=str(i.seq), attempts=i.attempts, name=i.name))
        for other in CALL, EVENT:
            self._kept.setdefault(other, [])
        return self._kept.pop(kind, [])

    async def done(self, intent: Intent) -> None:
        await self.store.outbox_done(int(intent.key))

    async def retry(self, intent: Intent, delay: float, error: str) -> None:
        await self.store.outbox_retry(int(intent.key), delay, error)

    async def dead(self, intent: Intent, error: str) -> None:
        await self.store.outbox_dead(int(intent.key), error)


# woken by the handlers that write rows (``PaymentsDeps.ring_outbox``); the slow poll only finds
# the rows of an instance that died before delivering them
RELAY: Relay[PaymentsDeps] = Relay(outbox=lambda deps: SqlOutbox(deps.store), bell=lambda deps: deps.outbox_bell,
                                   idle_poll=SAFETY_POLL, log=log)


# events first, in order: a payment is announced before what it causes elsewhere
# (contracts' ``contract.completed`` after ``payment.paid``), as the rows were written
RELAY.step(EVENT, ordered=True)(event_step())    # written in the payment's transaction: nothing to check


@RELAY.step(CALL)
async def _call(rt: Runtime[PaymentsDeps], intent: Intent) -> None:
    await rt.call(intent.name, msgspec.json.decode(intent.item, type=CALLS[intent.name]), timeout=CALL_TIMEOUT)


async def purge_idempotency_keys(rt: Runtime[PaymentsDeps]) -> None:
    while True:
        removed = await rt.deps.store.purge_idempotency(KEEP_KEYS)
        if removed:
            log.info("purged %d idempotency keys older than %s", removed, KEEP_KEYS)
        await trio.sleep(PURGE_EVERY)
