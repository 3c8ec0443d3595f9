"""The ``outbox`` table of the jobs and contracts stores: persisted intents of cross-service steps.

The relay that finishes them, and its retry policy, is :mod:`workup.runtime.outbox`
(:class:`~workup.runtime.outbox.RowOutbox` adapts this table to its port).

Forgetting intents is group-committed per kind (issue 15): one delete of a kind is in flight at
a time, and the ones asked meanwhile go together in the next statement (one partition, so one
mutation on Cassandra, one transaction on SQLite). Nothing waits on purpose, and
:meth:`Outbox.done` still returns only once its row is deleted, so what a caller may assume after
it (and what a crash before it leaves: an intent the relay finishes again) is unchanged; only
the statements sent under concurrency are fewer."""

from __future__ import annotations

from typing import Protocol

import trio

from .table import Db, Table

__all__ = ["OUTBOX", "Outbox", "Ringer"]

# Rows live seconds (written before a step, deleted after it), so each kind's partition collects a
# tombstone per step: keep them one hour, not Cassandra's ten days. (Should a replica miss a delete
# for longer, the intent comes back and its relay re-checks it: every step here is idempotent.)
OUTBOX = Table("outbox", {"kind": "text", "item": "text", "created_ms": "bigint"}, ("kind",), (("item", "ASC"),),
               gc_grace_seconds=3600)


class Ringer(Protocol):
    """What wakes the relay (``workup.runtime.outbox.Bell``)."""

    def ring(self) -> None: ...


class _Batch:
    """Items whose delete goes next, and whether it went (``error``: how it failed)."""

    def __init__(self, item: str) -> None:
        self.items = [item]
        self.sent = trio.Event()
        self.error: BaseException | None = None


class _Deletes:
    """The deletes of one kind: at most one statement in flight, and one batch waiting for it."""

    def __init__(self) -> None:
        self.busy = False
        self.free = trio.Event()
        self.waiting: _Batch | None = None


class Outbox:
    """``(kind, item)`` rows written before a cross-service step and deleted once the peer has
    acknowledged it; the service's relay finishes whatever is left (after a crash, say).
    ``bell`` is rung after each intent is written, so the relay needs no fast poll."""

    def __init__(self, db: Db, bell: Ringer | None = None) -> None:
        self.db = db
        self.bell = bell
        self._deletes: dict[str, _Deletes] = {}

    async def add(self, kind: str, item: str, now: int) -> None:
        await self.db.upsert(OUTBOX, {"kind": kind, "item": item, "created_ms": now})
        if self.bell is not None:
            self.bell.ring()

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        """``(item, created_ms)`` of the intents of ``kind`` still to do."""
        rows = await self.db.select(OUTBOX, {"kind": kind}, limit=limit)
        return [(r["item"], r["created_ms"]) for r in rows]

    async def done(self, kind: str, item: str) -> None:
        """Forget the intent; returns once its row is deleted (with those of other callers that
        asked while the previous delete of ``kind`` was in flight)."""
        d = self._deletes.setdefault(kind, _Deletes())
        # shielded: a caller cancelled while it leads a batch would strand the others in it
        with trio.CancelScope(shield=True):
            if d.waiting is not None:                 # a batch waits for the delete in flight: join it
                batch = d.waiting
                batch.items.append(item)
                await batch.sent.wait()
                if batch.error is not None:
                    raise RuntimeError(f"outbox delete of {kind} failed: {batch.error!r}") from batch.error
                return
            batch = _Batch(item)
            if d.busy:                                # lead the next batch once the one in flight is back
                d.waiting = batch
                while d.busy:
                    await d.free.wait()
                d.waiting = None
            d.busy, d.free = True, trio.Event()
            try:
                keys = [{"kind": kind, "item": i} for i in dict.fromkeys(batch.items)]
                if len(keys) == 1:
                    await self.db.delete(OUTBOX, keys[0])
                else:
                    await self.db.delete_many(OUTBOX, keys)
            except BaseException as exc:
                batch.error = exc
                raise
            finally:
                d.busy = False
                d.free.set()
                batch.sent.set()
