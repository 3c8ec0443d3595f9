"""Contract commands: create (from jobs), get, mine, print, has-active (from users)."""

from __future__ import annotations

from ...messages.contracts import (ActiveContractAnswer, Contract, ContractRef, ContractText, CreateContract,
    GetContract, GetMyContracts, HasActiveContract, PrintContract, contract_cache_key)
from ...problems import ProblemError
from ...ids import now_ms
from ...runtime.readcache import fill_soon
from . import service
from .deps import Ctx
from .reads import readable_contract
from .store import StoredContract, StoredMilestone, contract_id_for, milestone_id_for

__all__ = ["require_service", "render", "FRESH_FILL_MS"]

FRESH_FILL_MS = 30_000   # well inside the cache's TOMBSTONE_TTL (60 s): see create_contract


def require_service(ctx: Ctx) -> None:
    if ctx.caller.role != "SERVICE":
        raise ProblemError(403, "an internal command")


@service.command(CreateContract, status=201)
async def create_contract(ctx: Ctx, req: CreateContract) -> ContractRef:
    """Idempotent on the proposal id: the contract id is derived from it, and its creation time
    is the acceptance's (``accepted_ms``), so every attempt (a redelivery, jobs' relay twin)
    writes the very same rows, as made at that time (``ContractsStore.create_contract``)."""
    require_service(ctx)
    if not 1 <= len(req.milestones) <= 50:
        raise ProblemError(400, "a contract has 1 to 50 milestones")
    store = ctx.deps.store
    cid = contract_id_for(req.proposal_id)
    # No read first when the acceptance's time is given (jobs always gives it): every row is then
    # the same on each attempt, written as of that time, so a repeat changes nothing, and the
    # first attempt (the usual one) saves a read. Without it, a repeat would write the contract
    # under another time: the read keeps it from writing at all.
    if req.accepted_ms or await store.get_contract(cid) is None:
        made = req.accepted_ms or now_ms()
        milestones = [StoredMilestone(id=milestone_id_for(cid, i), contract_id=cid, position=i,
                                      description=m.description, amount=m.amount, due_date=m.due_date,
                                      status="OPEN", updated_ms=made) for i, m in enumerate(req.milestones)]
        contract = StoredContract(
            id=cid, job_id=req.job_id, job_title=req.job_title, proposal_id=req.proposal_id,
            client_id=req.client_id, freelancer_id=req.freelancer_id, status="ACTIVE",
            milestone_ids=[m.id for m in milestones], created_ms=made, updated_ms=made)
        await store.create_contract(contract, milestones)
        if now_ms() - made < FRESH_FILL_MS:
            # the parties' first read of it needs no store read. What is stored is these rows
            # unless the contract moved since; a move invalidates at a newer version, and its
            # tombstone lives TOMBSTONE_TTL (60 s) after the move, so a fill this soon after the
            # acceptance cannot outlive it (a late attempt, e.g. jobs' relay after an outage,
            # does not fill: it cannot tell whether the contract moved meanwhile)
            fill_soon(ctx.deps.cache, contract_cache_key(cid), contract.updated_ms, contract.public())
    return ContractRef(id=cid)


@service.command(GetContract)
async def get_contract(ctx: Ctx, req: GetContract) -> Contract:
    return await readable_contract(ctx.deps, ctx.caller, req.contract_id)


@service.command(GetMyContracts)
async def get_my_contracts(ctx: Ctx, req: GetMyContracts) -> list[Contract]:
    if ctx.caller.user_id is None:
        return []
    return [c.public() for c in await ctx.deps.store.contracts_of(ctx.caller.user_id)]


@service.command(HasActiveContract)
async def has_active_contract(ctx: Ctx, req: HasActiveContract) -> ActiveContractAnswer:
    require_service(ctx)
    contracts = await ctx.deps.store.contracts_of(req.user_id)
    return ActiveContractAnswer(active=any(c.status == "ACTIVE" for c in contracts))


@service.command(PrintContract)
async def print_contract(ctx: Ctx, req: PrintContract) -> ContractText:
    c = await readable_contract(ctx.deps, ctx.caller, req.contract_id)
    milestones = await ctx.deps.store.milestones_of(c.id)
    return ContractText(text=render(c, [m.public() for m in milestones]))


def render(c: Contract, milestones: list) -> str:
    lines = [
        f"Contract ID: {c.id}",
        f"Status: {c.status}",
        f"Job title: {c.job_title}",
        f"Job ID: {c.job_id}",
        f"Proposal ID: {c.proposal_id}",
        f"Client ID: {c.client_id}",
        f"Freelancer ID: {c.freelancer_id}",
        f"Created at: {c.created_at}",
        f"Milestones ({len(milestones)}):",
    ]
    for i, m in enumerate(milestones, 1):
        lines.append(f"  {i}. {m.description} | amount {m.amount:.2f} | due {m.due_date.isoformat()} | {m.status}")
    return "\n".join(lines) + "\n"
