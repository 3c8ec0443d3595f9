"""Slots: "at most one X per key" (one proposal per freelancer and job, one PENDING termination
request per party and contract), reserved with a conditional insert before X is written.

A slot row names its holder and when it was claimed. Another claimant takes the slot over only
when the holder is done (released, or its X was handled), or when the holder's X never appeared
and the claim is older than :data:`GRACE_MS` (its creator died between the slot and X; a younger
claim may belong to a creator still writing). Every change is conditional on the holder seen.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Literal

from .table import Db, Row, Table

__all__ = ["claim_slot", "slot_table", "GRACE_MS", "HolderState"]

GRACE_MS = 60_000   # longer than any request deadline
HolderState = Literal["live", "done", "missing"]


def slot_table(name: str, key: tuple[str, ...], holder: str) -> Table:
    return Table(name, {**{k: "text" for k in key}, holder: "text", "claimed_ms": "bigint"}, key)


async def claim_slot(db: Db, table: Table, key: Row, holder_column: str, mine: str, now: int,
                     state: Callable[[str], Awaitable[HolderState]]) -> tuple[str, int]:
    """Reserve the slot at ``key`` for ``mine``; returns the id holding it afterwards (``mine``
    when it was ours to take) and when that holder claimed it: for a redelivered request, the
    first attempt's ``now``, a time every attempt of one request agrees on."""
    for _ in range(3):   # each round either decides or saw the slot change under it
        if await db.insert_if_absent(table, {**key, holder_column: mine, "claimed_ms": now}):
            return mine, now
        rows = await db.select(table, key)
        if not rows:
            continue
        holder, claimed = rows[0][holder_column], rows[0]["claimed_ms"] or 0
        if holder == mine:
            return mine, claimed   # a redelivered request
        if holder is not None:
            seen = await state(holder)
            if seen == "live" or (seen == "missing" and now - claimed < GRACE_MS):
                return holder, claimed
        if await db.update_if(table, key, {holder_column: mine, "claimed_ms": now},
                              {holder_column: holder, "claimed_ms": rows[0]["claimed_ms"]}):
            return mine, now
    rows = await db.select(table, key)
    return (rows[0][holder_column], rows[0]["claimed_ms"] or 0) if rows and rows[0][holder_column] else (mine, now)
