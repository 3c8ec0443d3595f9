"""``Db.create``: the rows a command makes, as made at a time every attempt of it agrees on, on
Cassandra and SQLite (what replaced ``INSERT … IF NOT EXISTS`` for proposals and contracts), and
how rows too big for one batch are cut (``create_batches``)."""

from __future__ import annotations

import pytest

from workup.ids import now_ms
from workup.storage import Table
from workup.storage.table import create_batches
from tests.services.jobs._fixtures import KINDS, keyspace_prefix, store_of  # noqa: F401
from tests.services.jobs._services import new_id

STATE = Table("made_state", {"id": "text", "status": "text", "note": "text", "updated_ms": "bigint"}, ("id",))
INDEX = Table("made_index", {"owner": "text", "id": "text"}, ("owner",), (("id", "ASC"),))


class _Store:
    def __init__(self, db: object) -> None:
        self.db = db


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "madetest", [STATE, INDEX], _Store) as s:
        yield s


async def test_a_late_attempt_changes_nothing_a_later_write_changed(store):
    db, made = store.db, now_ms() - 5_000
    sid, owner = new_id(), new_id()
    rows = [(INDEX, {"owner": owner, "id": sid}),
            (STATE, {"id": sid, "status": "OPEN", "note": "first", "updated_ms": made})]
    await db.create(rows, made)
    assert await db.select(STATE, {"id": sid}) == [{"id": sid, "status": "OPEN", "note": "first", "updated_ms": made}]
    assert await db.update_if(STATE, {"id": sid}, {"status": "DONE", "updated_ms": made + 1},
                              {"status": "OPEN", "updated_ms": made})
    await db.update(STATE, {"id": sid}, {"note": "edited"})
    await db.create(rows, made)                     # a redelivery after both writes
    assert await db.select(STATE, {"id": sid}) == [{"id": sid, "status": "DONE", "note": "edited",
                                                   "updated_ms": made + 1}]
    assert await db.select(INDEX, {"owner": owner}) == [{"owner": owner, "id": sid}]


async def test_rows_too_big_for_one_batch_are_all_written(store):
    db, made, owner = store.db, now_ms(), new_id()
    ids = sorted(new_id() for _ in range(4))
    big = "x" * 30_000                              # 4 × 30 KB: past a batch's 50 KiB
    await db.create([(INDEX, {"owner": owner, "id": i}) for i in ids]
                    + [(STATE, {"id": i, "status": "OPEN", "note": big, "updated_ms": made}) for i in ids], made)
    assert [r["id"] for r in await db.select(INDEX, {"owner": owner})] == ids
    for i in ids:
        assert (await db.select(STATE, {"id": i}))[0]["note"] == big


def test_batches_keep_the_order_and_fit_the_limit():
    t = Table("t", {"k": "text", "v": "text"}, ("k",))
    rows = [(t, {"k": "a", "v": "x" * 10}), (t, {"k": "b", "v": "y" * 10}), (t, {"k": "c", "v": "z" * 50}),
            (t, {"k": "d", "v": "é" * 5})]
    assert [[r["k"] for _, r in c] for c in create_batches(rows, 30)] == [["a", "b"], ["c"], ["d"]]
    assert [[r["k"] for _, r in c] for c in create_batches(rows, 1000)] == [["a", "b", "c", "d"]]
    assert create_batches([], 30) == []
    # bytes, not characters: "é" is two
    assert [[r["k"] for _, r in c] for c in create_batches(rows[3:] * 3, 12)] == [["d"], ["d"], ["d"]]
