"""The ``outbox`` table of the jobs and contracts stores: persisted intents of cross-service steps.

The relay that finishes them, and its retry policy, is :mod:`workup.runtime.outbox`
(:class:`~workup.runtime.outbox.RowOutbox` adapts this table to its port)."""

from __future__ import annotations

from typing import Protocol, Sequence

from .later import DeleteLater
from .table import Db, Row, Table

__all__ = ["OUTBOX", "Outbox", "Ringer"]

# Rows live seconds (written before a step, deleted after it), so each kind's partition collects a
# tombstone per step: keep them one hour, not Cassandra's ten days. (Should a replica miss a delete
# for longer, the intent comes back and its relay re-checks it: every step here is idempotent.)
OUTBOX = Table("outbox", {"kind": "text", "item": "text", "created_ms": "bigint"}, ("kind",), (("item", "ASC"),),
               gc_grace_seconds=3600)


class Ringer(Protocol):
    """What wakes the relay (``workup.runtime.outbox.Bell``)."""

    def ring(self) -> None: ...


class Outbox:
    """``(kind, item)`` rows written before a cross-service step and deleted once the peer has
    acknowledged it; the service's relay finishes whatever is left (after a crash, say).
    ``bell`` is rung after each intent is written, so the relay needs no fast poll."""

    def __init__(self, db: Db, later: DeleteLater, bell: Ringer | None = None) -> None:
        self.db = db
        self.later = later      # where forget() gathers its deletes (its loop: the relay's)
        self.bell = bell

    async def add(self, kind: str, item: str, now: int) -> None:
        await self.db.upsert(OUTBOX, self.row(kind, item, now)[1])
        self.added()

    async def add_all(self, intents: Sequence[tuple[str, str]], now: int) -> None:
        """Several intents in one round trip (one unlogged batch: each is acknowledged before
        the change they guard is written, which is all the outbox needs of them)."""
        await self.db.upsert_bulk([self.row(kind, item, now) for kind, item in intents])
        self.added()

    @staticmethod
    def row(kind: str, item: str, now: int) -> tuple[Table, Row]:
        """The row of an intent, for a store that writes it in a batch of its own with the change
        it guards (then :meth:`added`)."""
        return OUTBOX, {"kind": kind, "item": item, "created_ms": now}

    def added(self) -> None:
        """Intents were written: wake the relay."""
        if self.bell is not None:
            self.bell.ring()

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        """``(item, created_ms)`` of the intents of ``kind`` still to do."""
        rows = await self.db.select(OUTBOX, {"kind": kind}, limit=limit)
        return [(r["item"], r["created_ms"]) for r in rows]

    async def done(self, kind: str, item: str) -> None:
        await self.db.delete(OUTBOX, {"kind": kind, "item": item})

    def forget(self, kind: str, item: str) -> None:
        """:meth:`done` without waiting, for a step that succeeded: deleted with the others of
        its moment (:class:`~workup.storage.later.DeleteLater`, whose loop the service's relay
        runs)."""
        self.later.delete(OUTBOX, {"kind": kind, "item": item})

