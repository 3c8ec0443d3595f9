"""The ``outbox`` table of the jobs and contracts stores: persisted intents of cross-service steps.

The relay that finishes them, and its retry policy, is :mod:`workup.runtime.outbox`
(:class:`~workup.runtime.outbox.RowOutbox` adapts this table to its port).

Writing and forgetting intents are group-committed per kind (issue 15): one write (one delete) of
a kind is in flight at a time, and the ones asked meanwhile go together in the next statement
(the kind is the partition: one mutation on Cassandra, where a one-partition batch skips the batch
log; one transaction on SQLite). Nothing waits on purpose, and :meth:`Outbox.add` and
:meth:`Outbox.done` still return only once their row is written or deleted, so what a caller may
assume after them (an intent written before the change that needs it; what a crash leaves: an
intent the relay finishes again) is unchanged; only the statements sent under concurrency are
fewer. Two adds of one item in one batch (two accepts of one job at once) are harmless: each
``created_ms`` is a valid one; a delete batch keeps one key per item."""

from __future__ import annotations

from typing import Awaitable, Callable, Protocol

import trio

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


class _Batch:
    """Rows whose statement goes next, and whether it went (``error``: how it failed)."""

    def __init__(self, row: Row) -> None:
        self.rows = [row]
        self.sent = trio.Event()
        self.error: BaseException | None = None


class _Group:
    """Group commit of one kind's writes (or deletes): at most one statement in flight, and one
    batch collecting the rows asked meanwhile. The caller that finds nothing in flight sends its
    row itself; the batch is sent when the flight is back, by a task of the run (as
    ``runtime/readcache.py``'s fills), so no caller waits on another caller's task and each
    caller's deadline still cancels its own wait (the statements then go on, as a cancelled
    write may have applied anyway)."""

    def __init__(self, send: Callable[[list[Row]], Awaitable[None]]) -> None:
        self.send = send
        self.busy = False
        self.waiting: _Batch | None = None

    async def put(self, row: Row) -> None:
        """Returns once ``row``'s statement applied; raises when it failed."""
        if self.busy:
            if self.waiting is None:
                self.waiting = _Batch(row)
            else:
                self.waiting.rows.append(row)
            batch = self.waiting
            await batch.sent.wait()
            if batch.error is not None:
                raise RuntimeError(f"outbox write failed: {batch.error!r}") from batch.error
            return
        self.busy = True
        try:
            await self.send([row])
        finally:
            self._next()

    def _next(self) -> None:
        """The flight is back: send the waiting batch, if any, else nothing is in flight."""
        batch, self.waiting = self.waiting, None
        if batch is None:
            self.busy = False
            return
        try:
            trio.lowlevel.spawn_system_task(self._flush, batch, name="workup.outbox.flush")
        except RuntimeError as exc:      # the run is ending: its callers are being cancelled too
            batch.error = exc
            batch.sent.set()
            self.busy = False

    async def _flush(self, batch: _Batch) -> None:
        try:
            await self.send(batch.rows)
        except BaseException as exc:     # noqa: BLE001 - a system task must not raise; the callers do
            batch.error = exc
        finally:
            batch.sent.set()
            self._next()


class Outbox:
    """``(kind, item)`` rows written before a cross-service step and deleted once the peer has
    acknowledged it; the service's relay finishes whatever is left (after a crash, say).
    ``bell`` is rung after each intent is written, so the relay needs no fast poll."""

    def __init__(self, db: Db, bell: Ringer | None = None) -> None:
        self.db = db
        self.bell = bell
        self._adds: dict[str, _Group] = {}
        self._deletes: dict[str, _Group] = {}

    async def add(self, kind: str, item: str, now: int) -> None:
        """Record the intent; returns once its row is written (with those of other callers that
        asked while the previous write of ``kind`` was in flight)."""
        group = self._adds.get(kind) or self._adds.setdefault(kind, _Group(self._write))
        await group.put({"kind": kind, "item": item, "created_ms": now})
        if self.bell is not None:
            self.bell.ring()

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        """``(item, created_ms)`` of the intents of ``kind`` still to do."""
        rows = await self.db.select(OUTBOX, {"kind": kind}, limit=limit)
        return [(r["item"], r["created_ms"]) for r in rows]

    async def done(self, kind: str, item: str) -> None:
        """Forget the intent; returns once its row is deleted (with those of other callers that
        asked while the previous delete of ``kind`` was in flight)."""
        group = self._deletes.get(kind) or self._deletes.setdefault(kind, _Group(self._delete))
        await group.put({"kind": kind, "item": item})

    async def _write(self, rows: list[Row]) -> None:
        if len(rows) == 1:
            await self.db.upsert(OUTBOX, rows[0])
        else:       # one partition (the kind's): one mutation, no batch log, on Cassandra
            await self.db.upsert_together([(OUTBOX, r) for r in rows])

    async def _delete(self, keys: list[Row]) -> None:
        unique = list({k["item"]: k for k in keys}.values())
        if len(unique) == 1:
            await self.db.delete(OUTBOX, unique[0])
        else:
            await self.db.delete_many(OUTBOX, unique)
