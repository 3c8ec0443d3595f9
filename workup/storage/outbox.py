"""The ``outbox`` table of the jobs and contracts stores: persisted intents of cross-service steps.

The relay that finishes them, and its retry policy, is :mod:`workup.runtime.outbox`
(:class:`~workup.runtime.outbox.RowOutbox` adapts this table to its port)."""

from __future__ import annotations

from .table import Db, Table

__all__ = ["OUTBOX", "Outbox"]

# Rows live seconds (written before a step, deleted after it), so each kind's partition collects a
# tombstone per step: keep them one hour, not Cassandra's ten days. (Should a replica miss a delete
# for longer, the intent comes back and its relay re-checks it: every step here is idempotent.)
OUTBOX = Table("outbox", {"kind": "text", "item": "text", "created_ms": "bigint"}, ("kind",), (("item", "ASC"),),
               gc_grace_seconds=3600)


class Outbox:
    """``(kind, item)`` rows written before a cross-service step and deleted once the peer has
    acknowledged it; the service's relay finishes whatever is left (after a crash, say)."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(self, kind: str, item: str, now: int) -> None:
        await self.db.upsert(OUTBOX, {"kind": kind, "item": item, "created_ms": now})

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        """``(item, created_ms)`` of the intents of ``kind`` still to do."""
        rows = await self.db.select(OUTBOX, {"kind": kind}, limit=limit)
        return [(r["item"], r["created_ms"]) for r in rows]

    async def done(self, kind: str, item: str) -> None:
        await self.db.delete(OUTBOX, {"kind": kind, "item": item})

