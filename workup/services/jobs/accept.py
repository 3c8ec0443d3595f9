"""Accepting a proposal: jobs → contracts, surviving a crash between the two.

1. Claim the job (conditional: only while no proposal is accepted) after writing an ``accept``
   intent to the outbox. The claimed job (inactive, ``accepted_proposal_id`` set) is the
   persisted decision; of two concurrent accepts on one job exactly one claim applies.
2. Finish: the proposal PENDING → ACCEPTED, every other PENDING one → REJECTED, the job out of
   the search index, ``contracts.CreateContract`` (idempotent on the proposal id), the contract
   id recorded on the job, the intent dropped. The index rows are only kept small (every reader
   skips an inactive job): they go with the store's gathered deletes (``storage/later.py``),
   which a crash may lose.

Every step of 2 is idempotent, so the handler, a retried accept and the background relay
(:data:`RELAY`, which finishes the intents older than its ``grace_ms`` left by a process that died)
may all run it.

What runs at once (``runtime/together.py``), and why the order does not matter:

- the job and the proposal are read together: two reads, checked in the same order as before.
- after the claim, the job's cache invalidation beside step 2 (which never reads the cache); both
  are done before the reply.
- in step 2, after the proposals are read again (that read must follow the claim: a proposal
  written meanwhile is either seen here or sees the job inactive and rejects itself), two
  branches at once: the decisions (+ their events and the list's invalidation) and
  ``CreateContract``. Each is idempotent and none reads what another writes; the
  intent, written before the claim, stays until all of them are done, so a crash anywhere leaves
  it for a redelivery or the relay, which run the whole of step 2 again.
- the intent forgotten once they are (``storage.Outbox.forget``: deleted within a moment, with
  the other deletes of that moment): a crash before leaves it, and the relay finishes as above.
  The contract id is recorded on the job before the reply (a retried accept that finds it
  answers without running step 2 again).
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
from ...runtime.together import together
from ...ids import now_ms
from . import service
from .deps import Ctx, JobsDeps
from .proposals import proposals_changed
from .rules import require_role
from .search import job_terms
from .store import StoredJob, StoredProposal

__all__ = ["finish_acceptance", "RELAY"]

log = logging.getLogger("workup.jobs")
KIND = "accept"

RELAY: Relay[JobsDeps] = Relay(outbox=lambda deps: RowOutbox(deps.store.outbox), grace_ms=3000, log=log,
                                bell=lambda deps: deps.store.bell, idle_poll=SAFETY_POLL,
                                deletes=lambda deps: deps.store.later)
service.background_task(RELAY.run)


@service.command(AcceptProposal)
async def accept_proposal(ctx: Ctx, req: AcceptProposal) -> Acceptance:
    client_id = require_role(ctx.caller, "CLIENT")
    store = ctx.deps.store
    # the proposal is read from the job's partition (the proposal of another job is not in it:
    # the same 404 as get_proposal's job check gave), beside the job itself
    job, p = await together(store.get_job(req.job_id), store.proposal_of_job(req.job_id, req.proposal_id))
    if job is None:
        raise not_found("job")
    if job.client_id != client_id:
        raise forbidden("only the job's owner may accept its proposals")
    if p is None:
        raise not_found("proposal")
    claimed_at = 0
    if job.accepted_proposal_id is None:
        if p.status != "PENDING" or not job.active:
            raise conflict(f"the proposal is {p.status} and the job is not open")
        now = max(now_ms(), job.updated_ms + 1)   # a newer version than any cached read
        await store.outbox.add(KIND, job.id, now)
        if await store.claim_job(job.id, p.id, now):
            claimed_at = now
            # the claim applied to the row read above: its new state is known without a read
            job = msgspec.structs.replace(job, accepted_proposal_id=p.id, active=False, updated_ms=now)
        else:
            job = await store.get_job(job.id) or job
    if job.accepted_proposal_id != p.id:
        raise conflict("another proposal of this job was accepted")
    try:
        if job.contract_id:
            contract_id = job.contract_id
        elif claimed_at:
            _, contract_id = await together(invalidate(ctx.deps.cache, [job_cache_key(job.id)], claimed_at),
                                            finish_acceptance(ctx, job))
        else:
            contract_id = await finish_acceptance(ctx, job)
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
    # the decisions and the contract at once, the index rows left to the store's gathered
    # deletes: see the module's docstring
    store.unindex_job(job, sorted(job_terms(job.title, job.description, job.skills)))
    _, contract_id = await together(_decide(rt, job, pid, proposals), _contract(rt, job, pid, proposals))
    # last: the intent guards every step above
    store.outbox.forget(KIND, job.id)
    return contract_id


async def _decide(rt: Runtime[JobsDeps], job: StoredJob, pid: str, proposals: list[StoredProposal]) -> None:
    """Every other proposal of an accepted job ends REJECTED. The decisions are announced on
    every run of this step, not only when this run applied them: a run that died after deciding
    and before announcing is finished by another run (the intent stays until the end), which
    must announce them. Duplicates only after a crash."""
    store = rt.deps.store
    now = max([now_ms(), *(p.updated_ms + 1 for p in proposals)])   # see proposals.next_version
    await store.settle_proposals(job.id, pid, [p.id for p in proposals if p.id != pid and p.status == "PENDING"], now)
    author = next((p.freelancer_id for p in proposals if p.id == pid), "")
    await rt.emit("proposal.accepted", [author], {"proposalId": pid, "jobId": job.id})
    for other in proposals:
        if other.id != pid:
            await rt.emit("proposal.rejected", [other.freelancer_id], {"proposalId": other.id, "jobId": job.id})
    await proposals_changed(rt.deps, job.id, now)


async def _contract(rt: Runtime[JobsDeps], job: StoredJob, pid: str, proposals: list[StoredProposal]) -> str:
    """The contract's id: the one recorded on the job, or ``CreateContract``'s (idempotent),
    then recorded on the job (before the reply: a retried accept that finds it does not run
    step 2, and announce its decisions, again)."""
    if job.contract_id is not None:
        return job.contract_id
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
    await rt.deps.store.record_contract(job, contract_id)
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
