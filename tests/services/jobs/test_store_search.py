"""Search and browse read a page by a few statements, whatever its size, on SQLite and on the
real Cassandra, and find what a plain filter over the corpus finds: every term, active jobs
only, index rows that no longer match their job skipped, newest first, pages without repeats
or gaps."""

from __future__ import annotations

import random

import pytest

from workup.services.jobs.jobs import search_page
from workup.services.jobs.store import JOB_INDEX, TABLES, JobsStore, StoredJob

from ...storage._count import statements
from ._fixtures import KINDS, store_of
from ._services import new_id


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "jobs", TABLES, JobsStore) as s:
        yield s


def _job(ms: int) -> StoredJob:
    return StoredJob(id=new_id(), client_id=new_id(), title="t", description="d", created_ms=ms, updated_ms=ms)


async def test_pages_match_a_plain_filter_on_a_random_corpus(store):
    rnd = random.Random(5)
    words = [f"{w}{new_id()[:8]}" for w in ("ant", "bee", "cat", "dog")]
    jobs, terms_of = [], {}
    for i in range(160):
        j = _job(1_000_000 + rnd.randrange(120))          # equal times too: the id breaks the tie
        jobs.append(j)
        terms_of[j.id] = {w for w in words if rnd.random() < (0.9, 0.5, 0.2, 0.05)[words.index(w)]}
    await store.seed_jobs([(j, sorted(terms_of[j.id])) for j in jobs])
    inactive = {j.id for j in rnd.sample(jobs, 25)}
    for job_id in inactive:
        assert await store.claim_job(job_id, "p", 2_000_000)
    # stale index rows: one at another time than its job's (a dead attempt), one at no job at all
    stale = [(JOB_INDEX, {"term": w, "created_ms": jobs[0].created_ms + 1, "job_id": jobs[0].id}) for w in words]
    stale += [(JOB_INDEX, {"term": w, "created_ms": 1_000_050, "job_id": new_id()}) for w in words]
    await store.db.upsert_bulk(stale)
    newest = sorted(jobs, key=lambda j: (j.created_ms, j.id), reverse=True)
    for query in ([words[0]], [words[0], words[1]], [words[1], words[2]], [words[0], words[3]], words[:3]):
        expected = [j.id for j in newest if j.id not in inactive and set(query) <= terms_of[j.id]]
        for limit in (1, 4, 9):
            seen, state = [], None
            for _ in range(200):
                page = await search_page(store, query, limit, state)
                assert len(page.jobs) <= limit
                seen += [j.id for j in page.jobs]
                state = page.paging_state
                if state is None:
                    break
            assert seen == expected, (query, limit)


async def test_a_page_costs_a_statement_per_term_and_one_for_its_jobs(store):
    """Two terms that every job has, a page of 5: the two first batches, one check of the other
    term for the 6 candidates and one read of their jobs: 4 statements (24 read one per key)."""
    a, b = f"a{new_id()[:8]}", f"b{new_id()[:8]}"
    jobs = [_job(3_000_000 + i) for i in range(40)]
    await store.seed_jobs([(j, [a, b]) for j in jobs])
    with statements(store.db) as sent:
        page = await search_page(store, [a, b], 5, None)
    assert [j.id for j in page.jobs] == [j.id for j in reversed(jobs)][:5]
    assert len(sent) == 4, sent
    with statements(store.db) as sent:                # one term, as browsing: scan + jobs
        page = await search_page(store, [a], 20, None)
    assert [j.id for j in page.jobs] == [j.id for j in reversed(jobs)][:20]
    assert len(sent) == 2, sent
    # a dead attempt's index rows, newest of all, point at the job under another time: skipped,
    # so the first batch falls one short and a second one (a scan, a check, a read) follows
    await store.db.upsert_bulk([(JOB_INDEX, {"term": t, "created_ms": 9_000_000, "job_id": jobs[0].id}) for t in (a, b)])
    with statements(store.db) as sent:
        page = await search_page(store, [a, b], 5, None)
    assert [j.id for j in page.jobs] == [j.id for j in reversed(jobs)][:5]
    assert len(sent) == 4 + 3, sent
