"""Accepting a proposal: jobs → contracts, surviving a crash between the two.

1. Claim the job (conditional: only while no proposal is accepted) after writing an ``accept``
   intent to the outbox. The claimed job (inactive, ``accepted_proposal_id`` set) is the
   persisted decision; of two concurrent accepts on one job exactly one claim applies.
2. Finish: the proposal PENDING → ACCEPTED, every other PENDING one → REJECTED, the job out of
   the search index, ``contracts.CreateContract`` (idempotent on the proposal id), the contract
   id recorded on the job, the intent dropped.

Every step of 2 is idempotent, so the handler, a retried accept and the background relay
(:data:`RELAY`, which finishes the intents older than its ``grace_ms`` left by a process that died)
may all run it.
"""

from __future__ import annotations

import logging

import msgspec

from ...messages.contracts import CreateContract, MilestoneSpec
from ...messages.jobs import AcceptProposal, Acceptance, JobRef, ProposalRef, job_cache_key
from ...problems import ProblemError, conflict, forbidden, not_found
from ...runtime.outbox import EVENT, SAFETY_POLL, Intent, Relay, RowOutbox, event_step
from ...runtime.readcache import invalidate
from ...runtime.service import Runtime
from ...ids import now_ms
from . import service
from .deps import Ctx, JobsDeps
from .proposals import proposals_changed
from .rules import require_role
from .search import job_terms
from .store import StoredJob

__all__ = ["finish_acceptance", "RELAY"]

log = logging.getLogger("workup.jobs")
KIND = "accept"

RELAY: Relay[JobsDeps] = Relay(outbox=lambda deps: RowOutbox(deps.store.outbox), grace_ms=3000, log=log,
                                bell=lambda deps: deps.store.bell, idle_poll=SAFETY_POLL)
service.background_task(RELAY.run)


@service.command(AcceptProposal)
async def accept_proposal(ctx: Ctx, req: AcceptProposal) -> Acceptance:
    client_id = require_role(ctx.caller, "CLIENT")
    store = ctx.deps.store
    job = await store.get_job(req.job_id)
    if job is None:
        raise not_found("job")
    if job.client_id != client_id:
        raise forbidden("only the job's owner may accept its proposals")
    # the job is known, so its partition is read directly (the proposal of another job is not
    # in it: the same 404 as get_proposal's job check gave)
    p = await store.proposal_of_job(job.id, req.proposal_id)
    if p is None:
        raise not_found("proposal")
    if job.accepted_proposal_id is None:
        if p.status != "PENDING" or not job.active:
            raise conflict(f"the proposal is {p.status} and the job is not open")
        now = max(now_ms(), job.updated_ms + 1)   # a newer version than any cached read
        await store.outbox.add(KIND, job.id, now)
        if await store.claim_job(job.id, p.id, now):
            await invalidate(ctx.deps.cache, [job_cache_key(job.id)], now)
            # the claim applied to the row read above: its new state is known without a read
            job = msgspec.structs.replace(job, accepted_proposal_id=p.id, active=False, updated_ms=now)
        else:
            job = await store.get_job(job.id) or job
    if job.accepted_proposal_id != p.id:
        raise conflict("another proposal of this job was accepted")
    try:
        contract_id = job.contract_id or await finish_acceptance(ctx, job)
    except ProblemError as exc:
        log.warning("accept of %s: contract not created yet (%s); the relay retries", p.id, exc)
        raise ProblemError(503, "the contract is being created; retry the request") from None
    return Acceptance(contract_id=contract_id, job=JobRef(id=job.id, active=False),
                      proposal=ProposalRef(id=p.id, status="ACCEPTED"))


async def finish_acceptance(rt: Runtime[JobsDeps], job: StoredJob) -> str:
    """Steps 2 for a claimed job; returns the contract id. Raises ProblemError when contracts
    did not answer (the intent stays for the relay)."""
    deps = rt.deps
    store = deps.store
    pid = job.accepted_proposal_id
    assert pid is not None
    proposals = await store.proposals_of_job(job.id)
    now = max([now_ms(), *(p.updated_ms + 1 for p in proposals)])   # see proposals.next_version
    # The decisions are announced on every run of this step, not only when this run applied them:
    # a run that died after deciding and before announcing is finished by another run (the
    # intent stays until the end), which must announce them. Duplicates only after a crash.
    # every other proposal of an accepted job ends REJECTED
    await store.settle_proposals(job.id, pid, [p.id for p in proposals if p.id != pid and p.status == "PENDING"], now)
    author = next((p.freelancer_id for p in proposals if p.id == pid), "")
    await rt.emit("proposal.accepted", [author], {"proposalId": pid, "jobId": job.id})
    for other in proposals:
        if other.id != pid:
            await rt.emit("proposal.rejected", [other.freelancer_id], {"proposalId": other.id, "jobId": job.id})
    await proposals_changed(deps, job.id, now)
    await store.unindex_job(job, sorted(job_terms(job.title, job.description, job.skills)))
    contract_id = job.contract_id
    if contract_id is None:
        accepted = next(p for p in proposals if p.id == pid)
        ref = await rt.call("contracts.CreateContract", CreateContract(
            proposal_id=pid, job_id=job.id, job_title=job.title, client_id=job.client_id,
            freelancer_id=accepted.freelancer_id,
            # the claim's time: set once by claim_job, which no later write of the job changes,
            # so every run of this step (handler, relay, redelivery) sends the same
            accepted_ms=job.updated_ms,
            milestones=[MilestoneSpec(description=m.description, amount=m.amount, due_date=m.due_date)
                        for m in accepted.milestones]))
        contract_id = str(ref["id"])
        await store.record_contract(job, contract_id)
    await store.outbox.done(KIND, job.id)
    return contract_id


@RELAY.step(KIND)
async def _finish(rt: Runtime[JobsDeps], intent: Intent) -> None:
    job = await rt.deps.store.get_job(intent.item)
    if job is not None and job.accepted_proposal_id is not None:   # else the claim never happened
        await finish_acceptance(rt, job)


async def _status_of(rt: Runtime[JobsDeps], entity: str, id: str) -> str | None:
    p = await rt.deps.store.get_proposal(id) if entity == "proposal" else None
    return p.status if p else None


RELAY.step(EVENT, ordered=True)(event_step(_status_of))
