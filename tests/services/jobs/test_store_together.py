"""A job's index rows (issue 15): written in one unlogged write (``Db.upsert_bulk``) and removed
in one (``Db.delete_many``), both stores, through the jobs store's tables. They need no batch
log: the job row, written after them, is what makes them count, and readers skip a key whose job
is missing or inactive (``test_store.py``: the kill between the index rows and the job row)."""

from __future__ import annotations

import pytest

from workup.services.jobs.store import JOB_INDEX, JOBS_BY_CLIENT, TABLES, JobsStore

from ._fixtures import KINDS, store_of
from ._services import new_id


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "jobs", TABLES, JobsStore) as s:
        yield s


async def test_index_rows_of_several_tables_are_written_and_removed_in_one_go(store):
    client, job_id = new_id(), new_id()
    alpha, beta = f"a{new_id()[:8]}", f"b{new_id()[:8]}"
    rows = [(JOB_INDEX, {"term": alpha, "created_ms": 5, "job_id": job_id}),
            (JOB_INDEX, {"term": beta, "created_ms": 5, "job_id": job_id}),
            (JOBS_BY_CLIENT, {"client_id": client, "created_ms": 5, "job_id": job_id})]
    await store.db.upsert_bulk(rows)
    assert await store.scan_index(alpha, None, 10) == [(5, job_id)]
    assert await store.scan_index(beta, None, 10) == [(5, job_id)]
    assert await store.db.select(JOBS_BY_CLIENT, {"client_id": client}) == [
        {"client_id": client, "created_ms": 5, "job_id": job_id}]
    await store.db.delete_many(JOB_INDEX, [key for table, key in rows if table is JOB_INDEX])
    assert await store.scan_index(alpha, None, 10) == [] and await store.scan_index(beta, None, 10) == []
    assert len(await store.db.select(JOBS_BY_CLIENT, {"client_id": client})) == 1   # another table: untouched
    await store.db.upsert_bulk([])     # nothing to write: no statement
    await store.db.delete_many(JOB_INDEX, [])


async def test_sqlite_writes_all_or_none(tmp_path, request):
    async with store_of("sqlite", tmp_path, request, "jobs", TABLES, JobsStore) as s:
        job_id = new_id()
        with pytest.raises(Exception):
            await s.db.upsert_bulk([
                (JOB_INDEX, {"term": "gamma", "created_ms": 5, "job_id": job_id}),
                (JOBS_BY_CLIENT, {"client_id": "c", "created_ms": 5, "job_id": job_id, "no_such": 1}),
            ])
        assert await s.scan_index("gamma", None, 10) == []
