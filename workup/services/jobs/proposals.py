"""Proposal commands: create, get, update while pending, list by job, mine.

The list of a job's proposals is cached per job in the worker (the access rule depends on the
caller, so the gateway cannot serve it): every proposal write of that job invalidates it.
"""

from __future__ import annotations

import msgspec

from ...transport.envelope import Caller
from ...messages.jobs import (CreateProposal, GetJobProposals, GetMyProposals, GetProposal, Proposal,
    UpdateProposal, proposals_cache_key)
from ...problems import conflict, forbidden, not_found
from ...runtime.readcache import fill_soon, invalidate, lookup
from ...ids import REQUEST_IDS, derived_id, now_ms
from ...runtime.outbox import EVENT, EventCheck, drop_event, event_intent, publish_event
from ...runtime.inbox import record
from ...runtime.context import after_reply
from ...runtime.together import together
from . import service
from .deps import Ctx, JobsDeps
from .rules import can_read_proposal, require_role, visible_proposals
from .store import StoredJob, StoredProposal

__all__ = ["proposals_changed", "next_version"]

_proposal_list = msgspec.json.Decoder(list[Proposal])


async def proposals_changed(deps: JobsDeps, job_id: str, version: int) -> None:
    await invalidate(deps.cache, [proposals_cache_key(job_id)], version)


async def next_version(deps: JobsDeps, job_id: str) -> int:
    """A version newer than every proposal of the job (the cached list's version is their
    largest ``updated_ms``), for a write that changes the list."""
    return max([now_ms(), *(p.updated_ms + 1 for p in await deps.store.proposals_of_job(job_id))])


async def _job(deps: JobsDeps, job_id: str) -> StoredJob:
    job = await deps.store.get_job(job_id)
    if job is None:
        raise not_found("job")
    return job


@service.command(CreateProposal, status=201)
async def create_proposal(ctx: Ctx, req: CreateProposal) -> Proposal:
    freelancer_id = require_role(ctx.caller, "FREELANCER")
    store = ctx.deps.store
    job = await _job(ctx.deps, req.job_id)
    if not job.active:
        raise conflict("the job is no longer active")
    pid = derived_id(REQUEST_IDS, "proposal", ctx.request_id)
    # The slot and the list's version at once (neither reads what the other writes). A crash
    # leaves a slot held by no proposal (reclaimable: storage/slots.py); a redelivery claims the
    # slot again with the same id.
    claiming = now_ms()
    (holder, claimed_ms), now = await together(
        store.guard_proposal_at(job.id, freelancer_id, pid, claiming), next_version(ctx.deps, job.id))
    if holder != pid:
        raise conflict("you already have a pending proposal on this job")
    # the event's intent is written with the proposal's rows, in their batch: no change without it
    event, item = event_intent("proposal.created", [job.client_id], {"proposalId": pid, "jobId": job.id},
                               EventCheck("proposal", pid, ("PENDING", "ACCEPTED")), claiming)
    # created when its slot was claimed: a redelivery writes the same rows, as of that time
    p = StoredProposal(id=pid, job_id=job.id, freelancer_id=freelancer_id, cover_letter=req.cover_letter,
                       job_duration=req.job_duration, status="PENDING", milestones=req.milestones,
                       attachments=req.attachments, created_ms=min(claimed_ms, now), updated_ms=now)
    await store.add_proposal(p, [(EVENT, item, claiming)])
    if claimed_ms != claiming:      # the slot was this request's already: a redelivery answers what is stored
        p = await store.get_proposal(pid) or p
    # after the write, at once: the list's invalidation and the job's second read (the race
    # with an accept needs that read after the write only; the invalidation reads nothing)
    _, job = await together(proposals_changed(ctx.deps, job.id, now), _job(ctx.deps, job.id))
    if not job.active:
        # the job was accepted while we wrote: this proposal can no longer be considered
        now = await next_version(ctx.deps, job.id)
        await store.decide_proposal(job.id, pid, "REJECTED", now)
        await proposals_changed(ctx.deps, job.id, now)
        await after_reply(ctx, lambda: drop_event(store.outbox, event))
        raise conflict("the job is no longer active")
    await publish_event(ctx, store.outbox, event)
    return p.public()


async def _readable(deps: JobsDeps, caller: Caller, proposal_id: str) -> StoredProposal:
    p = await deps.store.get_proposal(proposal_id)
    if p is None:
        raise not_found("proposal")
    job = await _job(deps, p.job_id)
    if not can_read_proposal(caller, p.freelancer_id, job.client_id):
        raise forbidden("only the proposal's freelancer or the job's owner may see it")
    return p


@service.command(GetProposal)
async def get_proposal(ctx: Ctx, req: GetProposal) -> Proposal:
    return (await _readable(ctx.deps, ctx.caller, req.proposal_id)).public()


# once: a repeat after a later update would put these values back
@service.command(UpdateProposal, once=True)
async def update_proposal(ctx: Ctx, req: UpdateProposal) -> Proposal:
    freelancer_id = require_role(ctx.caller, "FREELANCER")
    store = ctx.deps.store
    p = await store.get_proposal(req.proposal_id)
    if p is None:
        raise not_found("proposal")
    if p.freelancer_id != freelancer_id:
        raise forbidden("only the proposal's author may change it")
    if p.status != "PENDING":
        raise conflict(f"the proposal is {p.status}, not PENDING")
    changes = {f: getattr(req, f) for f in ("cover_letter", "job_duration", "milestones", "attachments")
               if getattr(req, f) is not None}
    p = msgspec.structs.replace(p, **changes, updated_ms=await next_version(ctx.deps, p.job_id))
    if not await store.update_pending_proposal(p, record(ctx.once, p.public())):
        raise conflict("the proposal is no longer PENDING")
    await proposals_changed(ctx.deps, p.job_id, p.updated_ms)
    return p.public()


@service.command(GetJobProposals)
async def get_job_proposals(ctx: Ctx, req: GetJobProposals) -> list[Proposal]:
    job = await _job(ctx.deps, req.job_id)
    key = proposals_cache_key(job.id)
    cached = await lookup(ctx.deps.cache, key)
    if cached is not None:
        proposals = _proposal_list.decode(cached)
    else:
        stored = await ctx.deps.store.proposals_of_job(job.id)
        version = max((p.updated_ms for p in stored), default=0)
        proposals = fill_soon(ctx.deps.cache, key, version, [p.public() for p in stored])
    shown = visible_proposals(ctx.caller, job.client_id, proposals, lambda p: p.freelancer_id)
    if shown is None:
        raise forbidden("only the job's owner may see its proposals")
    return shown


@service.command(GetMyProposals)
async def get_my_proposals(ctx: Ctx, req: GetMyProposals) -> list[Proposal]:
    freelancer_id = require_role(ctx.caller, "FREELANCER")
    return [p.public() for p in await ctx.deps.store.proposals_of_freelancer(freelancer_id)]


