"""``storage.Outbox.forget`` (issue 15): the intents forgotten within a moment are deleted
together, one statement per kind, by ``forget_loop`` (which the jobs and contracts relays run), on
Cassandra and SQLite; what is gathered when the loop stops is still sent; a store that refuses
the delete leaves the intents for the relay."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from workup.storage import OUTBOX, Outbox
from workup.storage.outbox import FORGET_WINDOW
from tests.services.jobs._fixtures import KINDS, keyspace_prefix, store_of  # noqa: F401
from tests.services.jobs._services import new_id


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
        self.deletes.append(len(keys))
        await self._db.delete_many(table, keys)


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "forgettest", [OUTBOX], _Store) as s:
        yield s


async def test_intents_forgotten_within_a_moment_go_in_one_delete_per_kind(store):
    db = Counting(store.db)
    outbox = Outbox(db)
    kind_a, kind_b = f"a{new_id()[:6]}", f"b{new_id()[:6]}"
    items = [new_id() for _ in range(5)]
    await outbox.add_all([(kind_a, i) for i in items] + [(kind_b, items[0])], 1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(outbox.forget_loop)
        for item in items:
            outbox.forget(kind_a, item)
        outbox.forget(kind_b, items[0])
        assert len(await outbox.pending(kind_a)) == 5          # asked for, not sent yet
        await trio.sleep(FORGET_WINDOW + 0.5)
        assert await outbox.pending(kind_a) == [] and await outbox.pending(kind_b) == []
        assert sorted(db.deletes) == [1, 5]                      # one statement per kind
        await outbox.add(kind_a, "late", 2)
        outbox.forget(kind_a, "late")
        nursery.cancel_scope.cancel()                            # stopped within the window...
    assert await outbox.pending(kind_a) == []                    # ...what it gathered still went
    assert db.deletes[-1] == 1


async def test_a_refused_delete_leaves_the_intents_to_the_relay(store, caplog):
    db = Counting(store.db)
    outbox = Outbox(db)
    kind = f"k{new_id()[:6]}"
    await outbox.add(kind, "x", 1)
    db.fail = True
    with caplog.at_level(logging.WARNING, logger="workup.storage.outbox"):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(outbox.forget_loop)
            outbox.forget(kind, "x")
            await trio.sleep(FORGET_WINDOW + 0.3)
            nursery.cancel_scope.cancel()
    assert await outbox.pending(kind) == [("x", 1)]
    assert "a relay does their steps again" in caplog.text
