"""contracts → payments steps, retried until payments acknowledges them, and the contracts events.

``payment`` intents (item = milestone id): an ACCEPTED milestone needs a payment request.
``cancel`` intents (item = contract id): a TERMINATED contract's PENDING requests are cancelled.
``event`` intents: notifications recorded before their change (:mod:`workup.runtime.outbox`).
An intent is written before the state change that needs it and dropped after payments answered;
:data:`RELAY` finishes the ones older than its ``grace_ms`` (their process died, or payments was
down). Both payments commands are idempotent, so finishing twice is harmless.
"""

from __future__ import annotations

import logging

from ...messages.contracts import Contract
from ...messages.payments import CancelContractRequests, CreatePaymentRequest
from ...runtime.context import after_reply
from ...runtime.outbox import EVENT, SAFETY_POLL, Intent, Relay, RowOutbox, event_step
from ...runtime.service import Runtime
from . import service
from .deps import ContractsDeps
from .store import StoredContract, StoredMilestone, payment_request_id_for

__all__ = ["PAYMENT", "CANCEL", "RELAY", "request_payment", "cancel_requests"]

log = logging.getLogger("workup.contracts")
PAYMENT, CANCEL = "payment", "cancel"

RELAY: Relay[ContractsDeps] = Relay(outbox=lambda deps: RowOutbox(deps.store.outbox), grace_ms=3000, log=log,
                                bell=lambda deps: deps.store.bell, idle_poll=SAFETY_POLL,
                                deletes=lambda deps: deps.store.later)
service.background_task(RELAY.run)


async def request_payment(rt: Runtime[ContractsDeps], c: StoredContract | Contract, m: StoredMilestone) -> str:
    """Open (or find) the milestone's payment request; returns its id."""
    ref = await rt.call("payments.CreatePaymentRequest", CreatePaymentRequest(
        milestone_id=m.id, contract_id=c.id, client_id=c.client_id, freelancer_id=c.freelancer_id,
        amount=m.amount, id=payment_request_id_for(m.id)))
    request_id = str(ref["id"])

    async def noted() -> None:
        await rt.deps.store.note_payment_request(m, request_id)
        rt.deps.store.outbox.forget(PAYMENT, m.id)
    # after the reply when handling one (``runtime/context.py``): the public milestone does not
    # show the request id and the reply carries it; a crash before the ack leaves the intent,
    # whose relay step asks payments again (idempotent) and notes its answer
    await after_reply(rt, noted)
    return request_id


async def cancel_requests(rt: Runtime[ContractsDeps], contract_id: str) -> None:
    await rt.call("payments.CancelContractRequests", CancelContractRequests(contract_id=contract_id))
    # payments answered: the intent is forgotten (as in request_payment)
    rt.deps.store.outbox.forget(CANCEL, contract_id)


@RELAY.step(PAYMENT)
async def _finish_payment(rt: Runtime[ContractsDeps], intent: Intent) -> None:
    store = rt.deps.store
    m = await store.get_milestone(intent.item)
    c = None if m is None else await store.get_contract(m.contract_id)
    if m is None or c is None or m.status not in ("ACCEPTED", "PAID") or m.payment_request_id:
        return                                            # never accepted, or already done
    await request_payment(rt, c, m)


@RELAY.step(CANCEL)
async def _finish_cancel(rt: Runtime[ContractsDeps], intent: Intent) -> None:
    c = await rt.deps.store.get_contract(intent.item)
    if c is not None and c.status == "TERMINATED":     # else the termination never applied
        await cancel_requests(rt, intent.item)


async def _status_of(rt: Runtime[ContractsDeps], entity: str, id: str) -> str | None:
    store = rt.deps.store
    if entity == "milestone":
        m = await store.get_milestone(id)
        return m.status if m else None
    c = await store.get_contract(id) if entity == "contract" else None
    return c.status if c else None


RELAY.step(EVENT, ordered=True)(event_step(_status_of))
