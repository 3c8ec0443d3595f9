"""``Db.update_if_then`` and the wide-row inbox (``workup/storage/inbox.py``), against Cassandra
and SQLite through the jobs store's tables: the answer row is written only when the conditional
update applied, and on SQLite with it or not at all."""

from __future__ import annotations

import pytest

from workup.runtime.inbox import OnceKey, Recorded
from workup.services.jobs.store import JOBS, TABLES, JobsStore
from workup.storage.inbox import inbox_row

from ._fixtures import KINDS, store_of
from ._services import new_id


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "jobs", TABLES, JobsStore) as s:
        yield s


def _key() -> OnceKey:
    return OnceKey("jobs.UpdateProposal", new_id(), "d1", "fay")


async def _job(store: JobsStore) -> str:
    job_id = new_id()
    assert await store.db.insert_if_absent(JOBS, {"id": job_id, "client_id": "c", "title": "first"})
    return job_id


async def test_the_answer_is_written_only_with_the_update(store):
    job_id, key, other = await _job(store), _key(), _key()
    answer = Recorded(key.id, 200, '{"status":"CLOSED"}', 1_900_000_000_000)
    assert await store.db.update_if_then(JOBS, {"id": job_id}, {"title": "second"}, {"title": "first"},
                                         inbox_row(answer))
    assert await store.inbox.recall(key) == answer
    refused = Recorded(other.id, 200, "{}", 1_900_000_000_000)
    assert not await store.db.update_if_then(JOBS, {"id": job_id}, {"title": "third"}, {"title": "first"},
                                             inbox_row(refused))
    assert await store.inbox.recall(other) is None      # not applied: no answer recorded
    final = Recorded(key.id, 200, '{"status":"CLOSED","more":1}', 1_900_000_000_000)
    await store.inbox.remember(key, final)
    assert await store.inbox.recall(key) == final


async def test_sqlite_writes_the_answer_with_the_update_or_neither(tmp_path, request):
    async with store_of("sqlite", tmp_path, request, "jobs", TABLES, JobsStore) as s:
        job_id, key = await _job(s), _key()
        with pytest.raises(Exception):
            await s.db.update_if_then(JOBS, {"id": job_id}, {"title": "second"}, {"title": "first"},
                                      (inbox_row(Recorded(key.id, 200, "{}", 1))[0], {"once_key": key.id, "no_such": 1}))
        assert (await s.db.select(JOBS, {"id": job_id}))[0]["title"] == "first"   # rolled back
        assert await s.inbox.recall(key) is None
