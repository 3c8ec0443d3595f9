"""``Db.upsert_together`` (issue 15): rows of one entity in several tables, one logged batch on
Cassandra, one transaction on SQLite, run against both through the jobs store's tables."""

from __future__ import annotations

import pytest

from workup.services.jobs.store import JOB_INDEX, JOBS_BY_CLIENT, TABLES, JobsStore

from ._fixtures import KINDS, store_of
from ._services import new_id


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "jobs", TABLES, JobsStore) as s:
        yield s


async def test_rows_of_several_tables_are_written_together(store):
    client, job_id = new_id(), new_id()
    await store.db.upsert_together([
        (JOB_INDEX, {"term": "alpha", "created_ms": 5, "job_id": job_id}),
        (JOB_INDEX, {"term": "beta", "created_ms": 5, "job_id": job_id}),
        (JOBS_BY_CLIENT, {"client_id": client, "created_ms": 5, "job_id": job_id}),
    ])
    assert await store.scan_index("alpha", None, 10) == [(5, job_id)]
    assert await store.scan_index("beta", None, 10) == [(5, job_id)]
    assert await store.db.select(JOBS_BY_CLIENT, {"client_id": client}) == [
        {"client_id": client, "created_ms": 5, "job_id": job_id}]
    await store.db.upsert_together([])     # nothing to write: no statement


async def test_sqlite_writes_all_or_none(tmp_path, request):
    async with store_of("sqlite", tmp_path, request, "jobs", TABLES, JobsStore) as s:
        job_id = new_id()
        with pytest.raises(Exception):
            await s.db.upsert_together([
                (JOB_INDEX, {"term": "gamma", "created_ms": 5, "job_id": job_id}),
                (JOBS_BY_CLIENT, {"client_id": "c", "created_ms": 5, "job_id": job_id, "no_such": 1}),
            ])
        assert await s.scan_index("gamma", None, 10) == []
