"""``storage.DeleteLater`` (issue 15): deletes nothing waits for (forgotten outbox intents, an
inactive job's index rows) gathered for a moment and sent one statement per table, on Cassandra
and SQLite; what is gathered when the loop stops is still sent; a store that refuses the delete
leaves the rows (for a relay, or for the readers, which skip them)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from workup.storage import OUTBOX_TABLES, DeleteLater, Outbox, Table
from tests.services.jobs._fixtures import KINDS, keyspace_prefix, store_of  # noqa: F401
from tests.services.jobs._services import new_id

INDEX = Table("later_index", {"term": "text", "id": "text"}, ("term",), (("id", "ASC"),))


class _Store:
    def __init__(self, db: Any) -> None:
        self.db = db


class Counting:
    """The store's Db, counting the delete statements sent (and failing them on demand)."""

    def __init__(self, db: Any) -> None:
        self._db, self.deletes, self.fail = db, [], False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def delete_many(self, table: Any, keys: Any) -> None:
        if self.fail:
            raise ConnectionError("store away")
        self.deletes.append((table.name, len(keys)))
        await self._db.delete_many(table, keys)


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "latertest", [*OUTBOX_TABLES, INDEX], _Store) as s:
        yield s


async def _until(check: Any) -> None:
    with trio.fail_after(5):
        while not await check():
            await trio.sleep(0.05)


async def test_deletes_of_a_moment_go_in_one_statement_per_table(store):
    db = Counting(store.db)
    later = DeleteLater(db, window=0.2)
    outbox = Outbox(db, later)
    kind_a, kind_b, term = f"a{new_id()[:6]}", f"b{new_id()[:6]}", f"t{new_id()[:6]}"
    items = [new_id() for _ in range(5)]
    await outbox.add_all([(kind_a, i) for i in items] + [(kind_b, items[0])], 1)
    await db.upsert_bulk([(INDEX, {"term": term, "id": i}) for i in items])
    async with trio.open_nursery() as nursery:
        nursery.start_soon(later.run)
        for item in items:
            outbox.forget(kind_a, item)
            later.delete(INDEX, {"term": term, "id": item})
        outbox.forget(kind_b, items[0])
        outbox.forget(kind_b, items[0])                             # asked twice: sent once
        assert later.pending() == 11 and len(await outbox.pending(kind_a)) == 5   # not sent yet

        async def all_gone() -> bool:
            return (await outbox.pending(kind_a) == [] and await outbox.pending(kind_b) == []
                    and await db.select(INDEX, {"term": term}) == [])
        await _until(all_gone)
        # one statement for the intents of both kinds, one for the index rows
        assert sorted(db.deletes) == sorted([("outbox_intents", 6), ("later_index", 5)])
        await outbox.add(kind_a, "late", 2)
        outbox.forget(kind_a, "late")
        nursery.cancel_scope.cancel()                                # stopped within the window...
    assert await outbox.pending(kind_a) == []                        # ...what it gathered still went
    assert db.deletes[-1] == ("outbox_intents", 1) and later.pending() == 0


async def test_a_refused_delete_leaves_the_rows(store, caplog):
    db = Counting(store.db)
    later = DeleteLater(db, window=0.05)
    outbox = Outbox(db, later)
    kind = f"k{new_id()[:6]}"
    await outbox.add(kind, "x", 1)
    db.fail = True
    with caplog.at_level(logging.WARNING, logger="workup.storage.later"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(later.run)
            outbox.forget(kind, "x")
            await trio.sleep(0.3)
            nursery.cancel_scope.cancel()
    assert await outbox.pending(kind) == [("x", 1)]
    assert "left for a relay or the readers" in caplog.text
