"""The outbox of the jobs and contracts stores: persisted intents of cross-service steps.

The relay that finishes them, and its retry policy, is :mod:`workup.runtime.outbox`
(:class:`~workup.runtime.outbox.RowOutbox` adapts this store to its port).

An intent lives seconds (written before a step, deleted after it), so on Cassandra each delete
leaves a tombstone that every later read of its partition steps over until compaction drops it.
With one partition per kind, a relay scan read every tombstone of the last hour and, at 30 flows
a second, would have reached Cassandra's failure threshold (100,000) within the hour. So intents
are partitioned by kind and by the minute they were written in (``bucket``), and a small registry
(``outbox_buckets``) lists the buckets that may still hold some: a scan reads the registry and
those buckets only. A bucket that ended more than :data:`CLOSE_AFTER_MS` ago and that a scan
found empty leaves the registry; no intent is written into it any more (a writer registers the
bucket of every intent it writes, again if its own write came that late).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Protocol, Sequence

from ..ids import now_ms
from .later import DeleteLater
from .table import Db, Row, Table

__all__ = ["OUTBOX", "OUTBOX_TABLES", "Outbox", "Ringer", "BUCKET_MS", "CLOSE_AFTER_MS", "bucket_of"]

BUCKET_MS = 60_000         # an intent's partition: its kind and the minute it was written in
CLOSE_AFTER_MS = 120_000   # a bucket this long past its end gets no new intent: empty, it is closed
REMEMBERED = 10_000        # intents this process wrote and has not finished, kept to find their bucket

# Tombstones kept one hour, not Cassandra's ten days. (Should a replica miss a delete for longer,
# the intent comes back and its relay re-checks it: every step here is idempotent.)
OUTBOX = Table("outbox_intents", {"kind": "text", "bucket": "bigint", "item": "text", "created_ms": "bigint"},
               ("kind", "bucket"), (("item", "ASC"),), gc_grace_seconds=3600)
BUCKETS = Table("outbox_buckets", {"kind": "text", "bucket": "bigint"}, ("kind",), (("bucket", "ASC"),),
                gc_grace_seconds=3600)
# The one-partition-per-kind table of earlier releases: what it still holds is moved into buckets
# the first time a process lists a kind (an upgrade may find intents left there).
LEGACY = Table("outbox", {"kind": "text", "item": "text", "created_ms": "bigint"}, ("kind",), (("item", "ASC"),),
               gc_grace_seconds=3600)
OUTBOX_TABLES = (OUTBOX, BUCKETS, LEGACY)


def bucket_of(created_ms: int) -> int:
    return created_ms // BUCKET_MS


def _intent_rows(intents: Sequence[tuple[str, str, int]]) -> list[tuple[Table, Row]]:
    return [(OUTBOX, {"kind": kind, "bucket": bucket_of(at), "item": item, "created_ms": at})
            for kind, item, at in intents]


class Ringer(Protocol):
    """What wakes the relay (``workup.runtime.outbox.Bell``)."""

    def ring(self) -> None: ...


class Outbox:
    """``(kind, item)`` rows written before a cross-service step and deleted once the peer has
    acknowledged it; the service's relay finishes whatever is left (after a crash, say).
    ``bell`` is rung after each intent is written, so the relay needs no fast poll."""

    def __init__(self, db: Db, later: DeleteLater, bell: Ringer | None = None,
                 clock: Callable[[], int] = now_ms) -> None:
        self.db = db
        self.later = later      # where forget() gathers its deletes (its loop: the relay's)
        self.bell = bell
        self._clock = clock
        self._registered: set[tuple[str, int]] = set()                 # buckets this process listed
        self._made: OrderedDict[tuple[str, str], int] = OrderedDict()  # unfinished intents -> created_ms
        self._adopted: set[str] = set()                                # kinds whose legacy rows were moved

    def _registry_rows(self, intents: Sequence[tuple[str, str, int]]) -> list[tuple[Table, Row]]:
        late = self._clock() - CLOSE_AFTER_MS // 2
        keys = {(kind, bucket_of(at)) for kind, _, at in intents}
        # registered again when written late: the bucket may have been closed meanwhile
        return [(BUCKETS, {"kind": k, "bucket": b}) for k, b in sorted(keys)
                if (k, b) not in self._registered or (b + 1) * BUCKET_MS <= late]

    def rows(self, intents: Sequence[tuple[str, str, int]]) -> list[tuple[Table, Row]]:
        """The rows that record ``(kind, item, created_ms)`` intents (with their buckets' registry
        rows), for a store that writes them in a logged batch of its own with the change they
        guard; then :meth:`added`."""
        return [*self._registry_rows(intents), *_intent_rows(intents)]

    def added(self, intents: Sequence[tuple[str, str, int]]) -> None:
        """``intents`` were written: remember their buckets, wake the relay."""
        for kind, item, at in intents:
            self._registered.add((kind, bucket_of(at)))
            self._made[(kind, item)] = at
            self._made.move_to_end((kind, item))
        while len(self._made) > REMEMBERED:   # a handler that failed never forgot its intent
            self._made.popitem(last=False)
        if self.bell is not None:
            self.bell.ring()

    async def add(self, kind: str, item: str, now: int) -> None:
        await self.add_all([(kind, item)], now)

    async def add_all(self, intents: Sequence[tuple[str, str]], now: int) -> None:
        """Intents in one round trip (one unlogged batch: each is acknowledged before the change
        they guard is written, which is all the outbox needs of them); a bucket new to this
        process is registered first, so no intent is ever in a bucket the relay does not list."""
        made = [(kind, item, now) for kind, item in intents]
        registry = self._registry_rows(made)
        if registry:
            await self.db.upsert_bulk(registry)
        rows = _intent_rows(made)
        if len(rows) == 1:
            await self.db.upsert(*rows[0])
        else:
            await self.db.upsert_bulk(rows)
        self.added(made)

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        """``(item, created_ms)`` of the intents of ``kind`` still to do, oldest bucket first;
        an old bucket found empty is closed."""
        if kind not in self._adopted:
            await self._adopt(kind)
        found: list[tuple[str, int]] = []
        closing = self._clock() - CLOSE_AFTER_MS
        for row in await self.db.select(BUCKETS, {"kind": kind}):
            bucket = row["bucket"]
            rows = await self.db.select(OUTBOX, {"kind": kind, "bucket": bucket}, limit=limit - len(found))
            if not rows and (bucket + 1) * BUCKET_MS <= closing:
                await self.db.delete(BUCKETS, {"kind": kind, "bucket": bucket})
                self._registered.discard((kind, bucket))
            found += [(r["item"], r["created_ms"]) for r in rows]
            if len(found) >= limit:
                break
        return found

    async def _adopt(self, kind: str) -> None:
        """Move what the legacy table holds of ``kind`` into buckets (idempotent: another process
        doing the same writes the same rows)."""
        while legacy := await self.db.select(LEGACY, {"kind": kind}, limit=500):
            for created in sorted({r["created_ms"] for r in legacy}):
                await self.add_all([(kind, r["item"]) for r in legacy if r["created_ms"] == created], created)
            await self.db.delete_many(LEGACY, [{"kind": kind, "item": r["item"]} for r in legacy])
        self._adopted.add(kind)

    def _key(self, kind: str, item: str, created_ms: int | None) -> Row | None:
        made = self._made.pop((kind, item), None)
        at = created_ms if created_ms is not None else made
        return None if at is None else {"kind": kind, "bucket": bucket_of(at), "item": item}

    async def done(self, kind: str, item: str, created_ms: int | None = None) -> None:
        """Delete an intent; ``created_ms`` may be left out for one this process wrote. One it
        cannot place (written by another process, or long ago) is left for the relay, which
        checks it again and then deletes it with its ``created_ms``."""
        key = self._key(kind, item, created_ms)
        if key is not None:
            await self.db.delete(OUTBOX, key)

    def forget(self, kind: str, item: str) -> None:
        """:meth:`done` without waiting, for a step that succeeded: deleted with the others of
        its moment (:class:`~workup.storage.later.DeleteLater`, whose loop the service's relay
        runs). One this process did not write is left for the relay's :meth:`done`."""
        key = self._key(kind, item, None)
        if key is not None:
            self.later.delete(OUTBOX, key)
