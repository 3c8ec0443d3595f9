"""Milestone commands: list, get, progress (freelancer), evaluate (client), mark paid (payments).

Evaluating ACCEPTED asks payments for a payment request (idempotent on the milestone id, whose
request id is derived from it: ``store.payment_request_id_for``). The ACCEPTED milestone without a
``payment_request_id`` plus a ``payment`` outbox intent, written before the state change, is what
the relay (``relay.py``) finishes if this process dies first.

Progress and evaluate are ``once``: their first answer is written into the milestone row by the
move itself (``store.MilestoneInbox``), and a repeat finds it when it reads the row.
"""

from __future__ import annotations

import logging

import msgspec

from ...messages.contracts import (EvaluateMilestone, EvaluatedMilestone, GetContractMilestones,
    GetMilestone, MarkMilestonePaid, Milestone, ProgressMilestone)
from ...problems import ProblemError, conflict, forbidden, not_found
from ...ids import now_ms
from ...runtime.inbox import Recorded, Replayed, record, recorded_in
from ...runtime.outbox import EventCheck, EventIntent, drop_event, intend_event, publish_event
from . import service
from .deps import ContractsDeps, Ctx
from .contracts import require_service
from .reads import contract_changed, milestone_changed, read_milestone, readable_contract
from .relay import PAYMENT, request_payment
from .rules import completes, evaluated, is_party, payable, progressed
from .store import StoredContract, StoredMilestone, payment_request_id_for

log = logging.getLogger("workup.contracts")


@service.command(GetContractMilestones)
async def get_contract_milestones(ctx: Ctx, req: GetContractMilestones) -> list[Milestone]:
    c = await readable_contract(ctx.deps, ctx.caller, req.contract_id)
    return [m.public() for m in await ctx.deps.store.milestones_of(c.id)]


@service.command(GetMilestone)
async def get_milestone(ctx: Ctx, req: GetMilestone) -> Milestone:
    return await read_milestone(ctx.deps, ctx.caller, req.milestone_id)


async def _party_milestone(ctx: Ctx, milestone_id: str, role: str) -> tuple[StoredMilestone, StoredContract]:
    """The milestone and its ACTIVE contract, when the caller is its party of ``role``."""
    if ctx.caller.role != role:
        raise forbidden(f"only the contract's {role.lower()} may do this")
    found = await ctx.deps.store.milestone_and_contract(milestone_id)
    m, c = found if found is not None else (None, None)
    if m is not None and ctx.once is not None and (first := recorded_in(m.inbox, ctx.once.key.id)) is not None:
        raise Replayed(first)      # this command moved it already: its first answer, whatever came since
    if m is None or c is None:
        raise not_found("milestone")
    if not is_party(ctx.caller, c.client_id, c.freelancer_id):
        raise forbidden(f"only the contract's {role.lower()} may do this")
    if c.status != "ACTIVE":
        raise conflict(f"the contract is {c.status}, not ACTIVE")
    return m, c


async def _move(deps: ContractsDeps, m: StoredMilestone, status: str, event: EventIntent | None = None,
                once: Recorded | None = None, **extra: str) -> StoredMilestone:
    """``m`` → ``status`` if nobody changed it meanwhile (else 409, and ``event``, the intent of
    the event this move announces, is dropped unpublished); ``once``: the command's answer,
    recorded with the move."""
    now = max(now_ms(), m.updated_ms + 1)
    if not await deps.store.move_milestone(m, status, now, once, **extra):
        if event is not None:
            await drop_event(deps.store.outbox, event)
        raise conflict("the milestone changed meanwhile; read it again")
    await milestone_changed(deps, m.id, now)
    return msgspec.structs.replace(m, status=status, updated_ms=now, **extra)


# The statuses a milestone can be in once a move to the key happened (for the event relay): later
# moves may have followed. Back to IN_PROGRESS may be IN_REVIEW again by then.
_REACHED = {"IN_REVIEW": ("IN_REVIEW", "ACCEPTED", "PAID"), "ACCEPTED": ("ACCEPTED", "PAID"),
            "IN_PROGRESS": ("IN_PROGRESS", "IN_REVIEW", "ACCEPTED", "PAID")}


# once: it steps a status machine, so a repeat would step again (or be a 409 from IN_REVIEW)
@service.command(ProgressMilestone, once=True)
async def progress_milestone(ctx: Ctx, req: ProgressMilestone) -> Milestone:
    m, c = await _party_milestone(ctx, req.milestone_id, "FREELANCER")
    nxt = progressed(m.status)
    if nxt is None:
        raise conflict(f"a {m.status} milestone cannot be progressed")
    event = None
    if nxt == "IN_REVIEW":
        event = await intend_event(ctx.deps.store.outbox, "milestone.in_review", [c.client_id],
                                   {"milestoneId": m.id, "contractId": c.id},
                                   EventCheck("milestone", m.id, _REACHED["IN_REVIEW"]))
    answer = record(ctx.once, msgspec.structs.replace(m, status=nxt).public())
    m = await _move(ctx.deps, m, nxt, event, answer)
    if event is not None:
        await publish_event(ctx, ctx.deps.store.outbox, event)
    return m.public()


def _evaluated(m: StoredMilestone, payment_request_id: str | None) -> EvaluatedMilestone:
    pub = m.public()
    return EvaluatedMilestone(id=pub.id, contract_id=pub.contract_id, description=pub.description,
                              amount=pub.amount, due_date=pub.due_date, status=pub.status,
                              payment_request_id=payment_request_id)


# once: the move out of IN_REVIEW happens once, so a repeat would be a 409 for an effect that
# happened; its first answer is recorded with the move (the payment request id joins it after)
@service.command(EvaluateMilestone, once=True)
async def evaluate_milestone(ctx: Ctx, req: EvaluateMilestone) -> EvaluatedMilestone:
    m, c = await _party_milestone(ctx, req.milestone_id, "CLIENT")
    nxt = evaluated(m.status, req.evaluated_state)
    if nxt is None:
        raise conflict(f"only an IN_REVIEW milestone can be evaluated; this one is {m.status}")
    # the event's intent and an acceptance's payment intent, both before the move, in one write
    event = await intend_event(ctx.deps.store.outbox, "milestone.evaluated", [c.freelancer_id],
                               {"milestoneId": m.id, "contractId": c.id}, EventCheck("milestone", m.id, _REACHED[nxt]),
                               also=[(PAYMENT, m.id)] if nxt == "ACCEPTED" else ())
    # the answer is whole before the move: the request's id is derived from the milestone's, and
    # payments opens it under that id (now, or the relay later if payments cannot be reached)
    request_id = payment_request_id_for(m.id) if nxt == "ACCEPTED" else None
    answer = record(ctx.once, _evaluated(msgspec.structs.replace(m, status=nxt), request_id))
    m = await _move(ctx.deps, m, nxt, event, answer)
    await publish_event(ctx, ctx.deps.store.outbox, event)
    if nxt == "ACCEPTED":
        try:
            request_id = await request_payment(ctx, c, m)
        except ProblemError as exc:
            log.warning("payment request for milestone %s deferred to the relay: %s", m.id, exc)
    return _evaluated(m, request_id)


async def _all_paid(deps: ContractsDeps, paid: StoredMilestone, siblings: list[StoredMilestone]) -> bool:
    """Is every milestone of ``paid``'s contract PAID, ``paid`` now included? PAID is final, so
    siblings read PAID before this payment still are; any other sibling is read again after it,
    or two last payments running at once could each miss the other's and leave the contract
    ACTIVE."""
    if completes("PAID" if x.id == paid.id else x.status for x in siblings):
        return True
    return completes(x.status for x in await deps.store.milestones_of(paid.contract_id))


@service.command(MarkMilestonePaid)
async def mark_milestone_paid(ctx: Ctx, req: MarkMilestonePaid) -> None:
    """Idempotent: PAID stays PAID; the contract is COMPLETED once every milestone is PAID."""
    require_service(ctx)
    store = ctx.deps.store
    found = await store.milestone_among(req.milestone_id)
    if found is None:
        raise not_found("milestone")
    m, siblings = found
    if not payable(m.status):
        raise conflict(f"a {m.status} milestone cannot be paid")
    if m.status == "ACCEPTED":
        now = max(now_ms(), m.updated_ms + 1)
        await store.pay_milestone(m, req.payment_request_id, now)
        await milestone_changed(ctx.deps, m.id, now)
        m = msgspec.structs.replace(m, status="PAID", updated_ms=now, payment_request_id=req.payment_request_id)
    if not await _all_paid(ctx.deps, m, siblings):
        return None                   # not the last payment: the contract is not read at all
    c = await store.get_contract(m.contract_id)
    if c is not None and c.status == "ACTIVE":
        now = max(now_ms(), c.updated_ms + 1)
        event = await intend_event(store.outbox, "contract.completed", list(c.parties()), {"contractId": c.id},
                                   EventCheck("contract", c.id, ("COMPLETED",)))
        if await store.move_contract(c.id, "COMPLETED", "ACTIVE", now):
            await contract_changed(ctx.deps, c.id, now)
            await publish_event(ctx, store.outbox, event)
        else:
            await drop_event(store.outbox, event)
    return None
