"""Job commands: create, get, mine, browse and keyword search."""

from __future__ import annotations

import trio

from ...messages.jobs import BrowseJobs, CreateJob, GetJob, GetMyJobs, Job, JobPage, SearchJobs, job_cache_key
from ...problems import ProblemError, not_found
from ...runtime.readcache import fill_soon
from ...ids import REQUEST_IDS, derived_id, now_ms
from . import service
from .deps import Ctx
from .rules import require_role
from .search import ALL, BadPagingState, decode_state, encode_state, job_terms, query_terms
from .store import JobsStore, StoredJob

__all__ = ["search_page"]


@service.command(CreateJob, status=201)
async def create_job(ctx: Ctx, req: CreateJob) -> Job:
    client_id = require_role(ctx.caller, "CLIENT")
    now = now_ms()
    job = StoredJob(id=derived_id(REQUEST_IDS, "job", ctx.request_id), client_id=client_id, title=req.title,
                    description=req.description, location=req.location, budget=req.budget,
                    skills=list(dict.fromkeys(req.skills)), experience=req.experience,
                    created_ms=now, updated_ms=now)
    store = ctx.deps.store
    if not await store.create_job(job, sorted(job_terms(job.title, job.description, job.skills))):
        job = await store.get_job(job.id) or job   # a redelivery: answer what was made
    return job.public()


@service.command(GetJob)
async def get_job(ctx: Ctx, req: GetJob) -> Job:
    job = await ctx.deps.store.get_job(req.job_id)
    if job is None:
        raise not_found("job")
    return fill_soon(ctx.deps.cache, job_cache_key(job.id), job.updated_ms, job.public())


@service.command(GetMyJobs)
async def get_my_jobs(ctx: Ctx, req: GetMyJobs) -> list[Job]:
    client_id = require_role(ctx.caller, "CLIENT")
    return [j.public() for j in await ctx.deps.store.jobs_of_client(client_id)]


@service.command(BrowseJobs)
async def browse_jobs(ctx: Ctx, req: BrowseJobs) -> JobPage:
    return await search_page(ctx.deps.store, [ALL], req.page_limit, req.paging_state)


@service.command(SearchJobs)
async def search_jobs(ctx: Ctx, req: SearchJobs) -> JobPage:
    terms = query_terms(req.query)
    if not terms:   # only punctuation: no word can match
        if req.paging_state is not None:
            _after(req.paging_state)
        return JobPage(jobs=[], paging_state=None)
    return await search_page(ctx.deps.store, terms, req.page_limit, req.paging_state)


def _after(state: str | None) -> tuple[int, str] | None:
    try:
        return None if state is None else decode_state(state)
    except BadPagingState as exc:
        raise ProblemError(400, str(exc)) from None


async def search_page(store: JobsStore, terms: list[str], limit: int, state: str | None) -> JobPage:
    """Active jobs indexed under every term, newest first, after the paging state. The rarest
    term's index partition drives the scan; the others are checked by point reads of theirs.
    The paging state is the last returned (created_ms, id), so pages never repeat or skip a job,
    whatever is created in between (newer jobs sort before the position)."""
    after = _after(state)
    batch = limit + 1   # enough when nothing is filtered out; grows while filters drop keys
    driver, keys = await _rarest(store, terms, after, batch)
    others = [t for t in terms if t != driver]
    found: list[StoredJob] = []
    while keys:
        candidates = keys
        for term in others:
            if candidates:
                candidates = await store.having_term(term, candidates)
        jobs = await store.indexed_jobs(candidates)
        found.extend(j for j in jobs if j.active)
        after = keys[-1]
        if len(found) > limit or len(keys) < batch:
            break
        batch = min(batch * 2, 512)
        keys = await store.scan_index(driver, after, batch)
    page = found[:limit]
    more = len(found) > limit
    return JobPage(jobs=[j.listing() for j in page],
                   paging_state=encode_state(page[-1].created_ms, page[-1].id) if more else None)


async def _rarest(store: JobsStore, terms: list[str], after: tuple[int, str] | None,
                  batch: int) -> tuple[str, list[tuple[int, str]]]:
    """The term whose first ``batch`` index keys reach furthest back (or that has fewer: it ends
    first), with those keys: the rarest term drives the scan, so a common word in the query
    (one in every job) does not make each match cost a dozen point reads. Each term's first
    batch is read at once; one that has none means no job has every term."""
    if len(terms) == 1:
        return terms[0], await store.scan_index(terms[0], after, batch)
    firsts: dict[str, list[tuple[int, str]]] = {}

    async def first(term: str) -> None:
        firsts[term] = await store.scan_index(term, after, batch)
    async with trio.open_nursery() as nursery:
        for term in terms:
            nursery.start_soon(first, term)
    # newest first: an older last key means a sparser term; a short batch is the term's end
    driver = min(terms, key=lambda t: (len(firsts[t]) >= batch, firsts[t][-1] if firsts[t] else (-1, "")))
    return driver, firsts[driver]
