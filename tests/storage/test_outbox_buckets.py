"""``storage.Outbox`` partitions intents by kind and minute (issue 15, noticed: one partition per
kind collected a tombstone per step, and a relay scan read them all). On SQLite and Cassandra:
a scan lists every bucket that may hold intents and reads only those; an old empty bucket leaves
the registry; a late writer registers its bucket again; deletes find each intent's bucket; the
rows an earlier release left in the one-partition table are adopted."""

from __future__ import annotations

from typing import Any

import pytest

from workup.storage import OUTBOX_TABLES, DeleteLater, Outbox
from workup.storage.outbox import BUCKET_MS, BUCKETS, CLOSE_AFTER_MS, LEGACY, OUTBOX, bucket_of
from tests.services.jobs._fixtures import KINDS, keyspace_prefix, store_of  # noqa: F401
from tests.services.jobs._services import new_id

T0 = 1_800_000_000_000 // BUCKET_MS * BUCKET_MS   # the start of a minute


class _Store:
    def __init__(self, db: Any) -> None:
        self.db = db


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


class CountingSelects:
    """The store's Db, counting the intent partitions each scan reads."""

    def __init__(self, db: Any) -> None:
        self._db, self.partitions = db, []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def select(self, table: Any, where: Any, **kw: Any) -> Any:
        if table.name == OUTBOX.name:
            self.partitions.append(where["bucket"])
        return await self._db.select(table, where, **kw)


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "buckettest", OUTBOX_TABLES, _Store) as s:
        yield s


def outbox_on(db: Any, clock: Clock) -> Outbox:
    return Outbox(db, DeleteLater(db), clock=clock)


async def buckets(db: Any, kind: str) -> list[int]:
    return [r["bucket"] for r in await db.select(BUCKETS, {"kind": kind})]


async def test_intents_are_listed_by_bucket_and_deleted_from_theirs(store):
    clock, kind = Clock(T0 + 5), f"k{new_id()[:8]}"
    outbox = outbox_on(store.db, clock)
    await outbox.add(kind, "b", T0 + 5)
    await outbox.add_all([(kind, "a"), (kind, "c")], T0 + BUCKET_MS + 1)   # the next minute
    await outbox.add(kind, "a0", T0 + 7)
    assert await buckets(store.db, kind) == [bucket_of(T0), bucket_of(T0) + 1]
    assert await outbox.pending(kind) == [("a0", T0 + 7), ("b", T0 + 5), ("a", T0 + BUCKET_MS + 1),
                                          ("c", T0 + BUCKET_MS + 1)]   # oldest bucket first
    assert await outbox.pending(kind, limit=3) == [("a0", T0 + 7), ("b", T0 + 5), ("a", T0 + BUCKET_MS + 1)]
    await outbox.done(kind, "b")                        # written here: its bucket is known
    other = outbox_on(store.db, clock)                  # another process (a relay after a crash)
    await other.done(kind, "a", T0 + BUCKET_MS + 1)     # told the intent's time
    await other.done(kind, "c")                         # not told, not its own: left for the relay
    assert await outbox.pending(kind) == [("a0", T0 + 7), ("c", T0 + BUCKET_MS + 1)]


async def test_an_old_empty_bucket_is_closed_and_no_longer_read(store):
    clock, kind = Clock(T0), f"k{new_id()[:8]}"
    db = CountingSelects(store.db)
    outbox = outbox_on(db, clock)
    await outbox.add(kind, "done-soon", T0)
    await outbox.add(kind, "stuck", T0 + BUCKET_MS)
    await outbox.done(kind, "done-soon")
    clock.now = T0 + BUCKET_MS + CLOSE_AFTER_MS - 1     # the first bucket is not closed yet
    assert await outbox.pending(kind) == [("stuck", T0 + BUCKET_MS)]
    assert await buckets(db, kind) == [bucket_of(T0), bucket_of(T0) + 1]
    clock.now = T0 + 3 * BUCKET_MS + CLOSE_AFTER_MS    # both are past; one still holds an intent
    assert await outbox.pending(kind) == [("stuck", T0 + BUCKET_MS)]
    assert await buckets(db, kind) == [bucket_of(T0) + 1]
    db.partitions.clear()
    assert await outbox.pending(kind) == [("stuck", T0 + BUCKET_MS)]
    assert db.partitions == [bucket_of(T0) + 1]         # the closed bucket is not read again
    await outbox.done(kind, "stuck")
    assert await outbox.pending(kind) == [] and await buckets(db, kind) == []


async def test_a_late_writer_registers_its_bucket_again(store):
    clock, kind = Clock(T0), f"k{new_id()[:8]}"
    relay, writer = outbox_on(store.db, clock), outbox_on(store.db, clock)
    await writer.add(kind, "first", T0)
    await writer.done(kind, "first")
    clock.now = T0 + BUCKET_MS + CLOSE_AFTER_MS
    assert await relay.pending(kind) == [] and await buckets(store.db, kind) == []   # closed
    # the writer took its time before T0 and writes only now: the bucket is listed again
    await writer.add(kind, "late", T0 + 1)
    assert await relay.pending(kind) == [("late", T0 + 1)]
    # a writer in time does not write the registry row again
    clock.now = T0 + 10 * BUCKET_MS
    await writer.add(kind, "x", clock.now)
    await store.db.delete(BUCKETS, {"kind": kind, "bucket": bucket_of(clock.now)})
    await writer.add(kind, "y", clock.now + 1)
    assert await buckets(store.db, kind) == [bucket_of(T0)]


async def test_rows_of_the_one_partition_table_are_adopted(store):
    clock, kind = Clock(T0 + 3 * BUCKET_MS), f"k{new_id()[:8]}"
    await store.db.upsert(LEGACY, {"kind": kind, "item": "old-1", "created_ms": T0})
    await store.db.upsert(LEGACY, {"kind": kind, "item": "old-2", "created_ms": T0 + BUCKET_MS})
    outbox = outbox_on(store.db, clock)
    assert await outbox.pending(kind) == [("old-1", T0), ("old-2", T0 + BUCKET_MS)]
    assert await store.db.select(LEGACY, {"kind": kind}) == []
    await outbox.done(kind, "old-1", T0)
    assert await outbox.pending(kind) == [("old-2", T0 + BUCKET_MS)]


async def test_forget_deletes_from_the_intents_bucket(store):
    import trio
    clock, kind = Clock(T0), f"k{new_id()[:8]}"
    later = DeleteLater(store.db, window=0.05)
    outbox = Outbox(store.db, later, clock=clock)
    await outbox.add_all([(kind, "p"), (kind, "q")], T0 + 2 * BUCKET_MS)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(later.run)
        outbox.forget(kind, "p")
        outbox.forget(kind, "r")                       # never written here: nothing to send
        with trio.fail_after(5):
            while await outbox.pending(kind) != [("q", T0 + 2 * BUCKET_MS)]:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
