"""The inbox of a wide-row store (jobs, contracts): the first answers of ``once`` commands
(``workup/runtime/inbox.py``), one row per command key.

A handler writes its row with its effect through :meth:`Db.update_if_then` (:func:`inbox_row`):
in the effect's transaction on SQLite; right after the effect's lightweight transaction on
Cassandra, where rows expire after a day (a repeat after its request's deadline is dropped
unanswered anyway: :data:`~workup.runtime.inbox.SKEW_MS`).
"""

from __future__ import annotations

from ..runtime.inbox import OnceKey, Recorded
from .table import Db, Row, Table

__all__ = ["INBOX", "DbInbox", "inbox_row", "update_if_once"]

INBOX = Table("inbox", {"once_key": "text", "status": "int", "body": "text", "until_ms": "bigint"}, ("once_key",),
              ttl_seconds=24 * 3600)


def inbox_row(recorded: Recorded) -> tuple[Table, Row]:
    return INBOX, {"once_key": recorded.key, "status": recorded.status, "body": recorded.body,
                   "until_ms": recorded.until_ms}


async def update_if_once(db: Db, table: Table, key: Row, changes: Row, expect: Row, once: Recorded | None) -> bool:
    """:meth:`Db.update_if`, recording a ``once`` command's answer with it when there is one."""
    if once is None:
        return await db.update_if(table, key, changes, expect)
    return await db.update_if_then(table, key, changes, expect, inbox_row(once))


class DbInbox:
    """:class:`~workup.runtime.inbox.Inbox` on a :class:`Db` (one point read per ``once`` command)."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def recall(self, key: OnceKey) -> Recorded | None:
        rows = await self.db.select(INBOX, {"once_key": key.id})
        if not rows:
            return None
        row = rows[0]
        return Recorded(row["once_key"], int(row["status"]), row["body"] or "", int(row["until_ms"]))

    async def remember(self, key: OnceKey, answer: Recorded) -> None:
        await self.db.upsert(*inbox_row(answer))
