"""Deletes nothing waits for, gathered and sent together: :class:`DeleteLater`.

Two kinds of rows are deleted only to keep a table small, never for a reader's sake: an outbox
intent whose step succeeded (a relay leaves intents younger than its 3 s grace alone) and a job's
search-index rows once the job is no longer active (every reader checks the job row, and skips an
inactive job). Asked for one at a time, each costs a statement and, on Cassandra, a mutation of
each partition it touches. Gathered for :data:`WINDOW` seconds, the deletes of one table go in
one statement, and the rows of one partition in one mutation: the intents of one kind share a
partition, the index rows of one search term too, so under load a second's worth of them costs a
handful of writes.

A process that dies loses what it gathered and did not send: an intent then looks unfinished and
a relay does its step again (every step is idempotent: an event is announced twice), and an index
row of an inactive job stays, skipped by every reader.
"""

from __future__ import annotations

import logging

import trio

from .table import Db, Row, Table

__all__ = ["DeleteLater", "WINDOW", "CHUNK"]

WINDOW = 0.5    # seconds the deletes gather: well under the relays' 3 s grace
CHUNK = 100     # keys per statement: a bigger batch draws the node's size warnings
_log = logging.getLogger("workup.storage.later")


class DeleteLater:
    """``delete(table, key)`` returns at once; :meth:`run` (the service's relay runs it) sends
    what was asked, a table at a time, every :data:`WINDOW` seconds while there is any."""

    def __init__(self, db: Db, window: float = WINDOW) -> None:
        self.db = db
        self.window = window
        self._keys: dict[str, tuple[Table, list[Row]]] = {}
        self._wake = trio.Event()

    def delete(self, table: Table, key: Row) -> None:
        self._keys.setdefault(table.name, (table, []))[1].append(key)
        self._wake.set()

    def pending(self) -> int:
        return sum(len(keys) for _, keys in self._keys.values())

    async def run(self, within: float | None = None) -> None:
        """Forever, gathering for :attr:`window` seconds or ``within`` if shorter (the relay's
        grace over 4: a forgotten intent is gone long before a relay takes it for unfinished);
        on the way out, what is still gathered is sent (bounded: 2 s)."""
        window = self.window if within is None else min(self.window, within)
        try:
            while True:
                await self._wake.wait()
                await trio.sleep(window)
                await self._send()
        finally:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + 2):
                await self._send()

    async def _send(self) -> None:
        self._wake = trio.Event()       # a delete asked from now on wakes the next round
        gathered, self._keys = self._keys, {}
        for table, keys in gathered.values():
            unique = list({tuple(sorted(k.items())): k for k in keys}.values())
            for i in range(0, len(unique), CHUNK):
                try:
                    await self.db.delete_many(table, unique[i:i + CHUNK])
                except Exception as exc:    # the store is away: see the module's docstring
                    _log.warning("deleting %d %s rows failed (left for a relay or the readers): %s",
                                 len(unique[i:i + CHUNK]), table.name, exc)
