"""Termination requests: a party asks, an admin accepts (contract TERMINATED, its PENDING payment
requests cancelled through the relay) or rejects."""

from __future__ import annotations

import logging

import msgspec

from ...messages.contracts import (GetPendingTerminations, HandleTermination, RequestTermination,
    TerminationRequest)
from ...problems import ProblemError, conflict, forbidden, not_found
from ...ids import REQUEST_IDS, derived_id, now_ms
from ...runtime.inbox import record
from ...runtime.outbox import EventCheck, drop_event, intend_event, publish_event
from . import service
from .deps import Ctx
from .reads import contract_changed, readable_contract
from .relay import CANCEL, cancel_requests
from .rules import handled, is_party
from .store import StoredTermination

log = logging.getLogger("workup.contracts")


@service.command(RequestTermination, status=201)
async def request_termination(ctx: Ctx, req: RequestTermination) -> TerminationRequest:
    store = ctx.deps.store
    c = await store.get_contract(req.contract_id)
    if c is None:
        raise not_found("contract")
    if not is_party(ctx.caller, c.client_id, c.freelancer_id):
        raise forbidden("only the contract's parties may ask to terminate it")
    if c.status != "ACTIVE":
        raise conflict(f"the contract is {c.status}, not ACTIVE")
    requester = ctx.caller.user_id
    assert requester is not None
    tid = derived_id(REQUEST_IDS, "termination", ctx.request_id)
    if await store.guard_termination(c.id, requester, tid, now_ms()) != tid:
        raise conflict("you already have a PENDING termination request on this contract")
    now = now_ms()
    t = StoredTermination(id=tid, contract_id=c.id, requester_id=requester, reason=req.reason,
                          status="PENDING", created_ms=now, updated_ms=now)
    if not await store.add_termination(t):
        t = await store.get_termination(tid) or t   # a redelivery
    return t.public()


@service.command(GetPendingTerminations)
async def get_pending_terminations(ctx: Ctx, req: GetPendingTerminations) -> list[TerminationRequest]:
    c = await readable_contract(ctx.deps, ctx.caller, req.contract_id)
    return [t.public() for t in await ctx.deps.store.terminations_of(c.id) if t.status == "PENDING"]


# once: the move out of PENDING happens once, so a repeat would be a 409 for an effect that
# happened; the answer is recorded with the last move (the contract's, when it is accepted)
@service.command(HandleTermination, once=True)
async def handle_termination(ctx: Ctx, req: HandleTermination) -> TerminationRequest:
    if ctx.caller.role != "ADMIN":
        raise forbidden("only an admin may handle termination requests")
    store = ctx.deps.store
    t = await store.get_termination(req.termination_id)
    if t is None:
        raise not_found("termination request")
    nxt = handled(t.status, req.chosen_status)
    if nxt is None:
        raise conflict(f"the termination request is {t.status}, not PENDING")
    c = await store.get_contract(t.contract_id)
    if c is None:
        raise not_found("contract")
    if nxt == "ACCEPTED" and c.status != "ACTIVE":
        raise conflict(f"the contract is {c.status}, not ACTIVE")
    now = max(now_ms(), c.updated_ms + 1)   # the contract's next version, if it changes
    answer = record(ctx.once, msgspec.structs.replace(t, status=nxt, updated_ms=now).public())
    if not await store.move_termination(t, nxt, "PENDING", now, None if nxt == "ACCEPTED" else answer):
        raise conflict("the termination request was handled meanwhile")
    if nxt == "ACCEPTED":
        await store.outbox.add(CANCEL, c.id, now)
        event = await intend_event(store.outbox, "contract.terminated", list(c.parties()), {"contractId": c.id},
                                   EventCheck("contract", c.id, ("TERMINATED",)))
        if not await store.move_contract(c.id, "TERMINATED", "ACTIVE", now, answer):
            await drop_event(store.outbox, event)
            await store.move_termination(t, "PENDING", "ACCEPTED", now_ms())   # undo: nothing ended
            raise conflict("the contract is no longer ACTIVE")
        await contract_changed(ctx.deps, c.id, now)
        await publish_event(ctx, store.outbox, event)
        try:
            await cancel_requests(ctx, c.id)
        except ProblemError as exc:
            log.warning("cancelling payment requests of %s deferred to the relay: %s", c.id, exc)
    await store.release_termination_guard(t)
    t.status, t.updated_ms = nxt, now
    return t.public()
