"""The payments outbox: delivers what a committed transaction queued (``contracts.MarkMilestonePaid``
calls and ``payment.*`` events) until it is acknowledged.

The rows are written in the same transaction as the payment, so a process killed between the
commit and the delivery loses nothing. The handler that wrote them delivers them itself after its
reply (:func:`deliver`: events first, as the relay does, then ONE statement forgets them all), so a
flow costs no relay scan and no per-row delete. They are written held for :data:`HOLD` seconds
(``next_attempt_at``): no relay claims them meanwhile, so a relay that does is finishing the work
of a writer that died or was cut off. A delivery that fails is judged by the same policy as the
relay's (``next_step``): the row is retried by this process's relay when due (0.5 s, doubling;
the bell's ``ring_at`` wakes it then) or parked DEAD; rows a handler could not forget (the
statement failed, the after-reply work was cut off) are the relay's once the hold is over, and a
process that died leaves them until then too: a redelivered command's replay rings the relay for
that moment, and otherwise the next scan (every ``SAFETY_POLL`` seconds) finds them, so such a
row goes out :data:`HOLD` to ``HOLD + SAFETY_POLL`` seconds after its commit.

Receivers are idempotent, so a delivery repeated after a crash between "delivered" and "deleted"
is harmless. Claims are leased (``SKIP LOCKED`` on PostgreSQL), so several instances share the
work without delivering a row twice in the normal case. The loop and its retry/dead-letter policy
are :mod:`workup.runtime.outbox`'s; :class:`SqlOutbox` adapts the ``outbox`` table to its port
(each row keeps its attempts, next due time and last error; a dead one stays, ``status =
'DEAD'``, for an operator).
"""

from __future__ import annotations

import datetime as dt
import logging

import msgspec
import trio

from ...messages.contracts import MarkMilestonePaid
from ...runtime.instance import AFTER_REPLY_LIMIT
from ...runtime.outbox import EVENT, SAFETY_POLL, Intent, Relay, event_step
from ...runtime.service import Runtime
from .deps import PaymentsDeps
from .ops import OutboxItem, Written
from .store import SqlStore

__all__ = ["RELAY", "SqlOutbox", "HOLD", "deliver", "purge_idempotency_keys"]

log = logging.getLogger("workup.payments.outbox")

CALL = "call"
CALLS: dict[str, type] = {"contracts.MarkMilestonePaid": MarkMilestonePaid}
LEASE = 30.0          # seconds a claimed row is left to its relay
# seconds a handler's rows are left to it: its after-reply work is cut off after AFTER_REPLY_LIMIT
HOLD = AFTER_REPLY_LIMIT + 2.0
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
            self._kept.setdefault(i.kind, []).append(_intent(i))
        for other in CALL, EVENT:
            self._kept.setdefault(other, [])
        return self._kept.pop(kind, [])

    async def done(self, intent: Intent) -> None:
        await self.store.outbox_done(int(intent.key))

    async def retry(self, intent: Intent, delay: float, error: str) -> None:
        await self.store.outbox_retry(int(intent.key), delay, error)

    async def dead(self, intent: Intent, error: str) -> None:
        await self.store.outbox_dead(int(intent.key), error)


def _intent(i: OutboxItem) -> Intent:
    return Intent(kind=i.kind, item=i.payload.decode(), key=str(i.seq), attempts=i.attempts, name=i.name)


class _Held:
    """The port over rows their writer delivers: a delivered row is only noted (:func:`deliver`
    forgets them all in one statement), a failed one is retried or parked as the relay would."""

    def __init__(self, table: SqlOutbox) -> None:
        self.table = table
        self.delivered: list[int] = []

    async def claim(self, kind: str, limit: int) -> list[Intent]:
        return []                          # the writer's rows only: never scanned

    async def done(self, intent: Intent) -> None:
        self.delivered.append(int(intent.key))

    async def retry(self, intent: Intent, delay: float, error: str) -> None:
        await self.table.retry(intent, delay, error)

    async def dead(self, intent: Intent, error: str) -> None:
        await self.table.dead(intent, error)


async def deliver(rt: Runtime[PaymentsDeps], written: Written) -> None:
    """The rows ``written`` (held, ``HOLD``) by the caller's committed transaction: attempted with
    the relay's steps and policy (:meth:`Relay.deliver`), the delivered ones forgotten in ONE
    statement. A failed one is retried by the relay when due; anything left unfinished (this
    raised or was cut off) is the relay's when the hold is over."""
    deps = rt.deps
    held = _Held(SqlOutbox(deps.store))
    try:
        retries = await RELAY.deliver(rt, held, [_intent(i) for i in written.items()])
        if held.delivered:
            await deps.store.outbox_forget(held.delivered)
    except BaseException:
        deps.outbox_bell.ring_at(trio.current_time() + HOLD)
        raise
    if retries:
        deps.outbox_bell.ring_at(min(retries))


# the safety net: rows a writer left (it died, failed or was cut off) are found by the slow poll,
# when the bell says they are due (``ring_at``: a failed delivery, a replayed command), or once
# the hold of what was written before this process started is over (``held``)
RELAY: Relay[PaymentsDeps] = Relay(outbox=lambda deps: SqlOutbox(deps.store), bell=lambda deps: deps.outbox_bell,
                                   idle_poll=SAFETY_POLL, held=HOLD, log=log)


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
