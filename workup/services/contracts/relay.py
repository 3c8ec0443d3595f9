"""contracts → payments steps, retried until payments acknowledges them.

``payment`` intents (item = milestone id): an ACCEPTED milestone needs a payment request.
``cancel`` intents (item = contract id): a TERMINATED contract's PENDING requests are cancelled.
An intent is written before the state change that needs it and dropped after payments answered;
the relay finishes the ones older than :data:`GRACE_MS` (their process died, or payments was down).
Both payments commands are idempotent, so finishing twice is harmless.
"""

from __future__ import annotations

import logging

from ...messages.contracts import Contract
from ...messages.payments import CancelContractRequests, CreatePaymentRequest
from ...problems import ProblemError
from ...runtime.service import Runtime
from ...ids import now_ms
from ...storage import relay_events, run_relay
from . import service
from .deps import ContractsDeps
from .store import ContractsStore, StoredContract, StoredMilestone

__all__ = ["PAYMENT", "CANCEL", "request_payment", "cancel_requests", "relay_once", "RELAY_INTERVAL", "GRACE_MS"]

log = logging.getLogger("workup.contracts")
PAYMENT, CANCEL = "payment", "cancel"
RELAY_INTERVAL = 1.0
GRACE_MS = 3000


async def request_payment(rt: Runtime[ContractsDeps], c: StoredContract | Contract, m: StoredMilestone) -> str:
    """Open (or find) the milestone's payment request; returns its id."""
    ref = await rt.call("payments.CreatePaymentRequest", CreatePaymentRequest(
        milestone_id=m.id, contract_id=c.id, client_id=c.client_id, freelancer_id=c.freelancer_id,
        amount=m.amount))
    request_id = str(ref["id"])
    await rt.deps.store.record_payment_request(m, request_id)
    await rt.deps.store.outbox.done(PAYMENT, m.id)
    return request_id


async def cancel_requests(rt: Runtime[ContractsDeps], contract_id: str) -> None:
    await rt.call("payments.CancelContractRequests", CancelContractRequests(contract_id=contract_id))
    await rt.deps.store.outbox.done(CANCEL, contract_id)


async def _finish_payment(rt: Runtime[ContractsDeps], milestone_id: str) -> None:
    store = rt.deps.store
    m = await store.get_milestone(milestone_id)
    c = None if m is None else await store.get_contract(m.contract_id)
    if m is None or c is None or m.status not in ("ACCEPTED", "PAID") or m.payment_request_id:
        await store.outbox.done(PAYMENT, milestone_id)   # never accepted, or already done
        return
    await request_payment(rt, c, m)


async def _finish_cancel(rt: Runtime[ContractsDeps], contract_id: str) -> None:
    c = await rt.deps.store.get_contract(contract_id)
    if c is None or c.status != "TERMINATED":
        await rt.deps.store.outbox.done(CANCEL, contract_id)   # the termination never applied
        return
    await cancel_requests(rt, contract_id)


async def relay_once(rt: Runtime[ContractsDeps]) -> int:
    """Finish the intents older than the grace period; returns how many were finished."""
    done = 0
    for kind, finish in ((PAYMENT, _finish_payment), (CANCEL, _finish_cancel)):
        for item, created_ms in await rt.deps.store.outbox.pending(kind):
            if now_ms() - created_ms < GRACE_MS:
                continue
            try:
                await finish(rt, item)
                done += 1
            except ProblemError as exc:
                log.warning("relay: %s %s still pending: %s", kind, item, exc)
    return done + await relay_events(rt, rt.deps.store.outbox, _status_of(rt.deps.store), GRACE_MS, log)


def _status_of(store: ContractsStore):
    async def status(entity: str, id: str) -> str | None:
        if entity == "milestone":
            m = await store.get_milestone(id)
            return m.status if m else None
        c = await store.get_contract(id) if entity == "contract" else None
        return c.status if c else None
    return status


@service.background_task
async def payments_relay(rt: Runtime[ContractsDeps]) -> None:
    await run_relay(lambda: relay_once(rt), RELAY_INTERVAL, log)
