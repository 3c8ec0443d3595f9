"""Counting the statements a :class:`~workup.storage.Db` adapter sends to its store: the
requests of ``CassandraDb._ask`` (one per statement, batch or page) on Cassandra, the
executed statements on SQLite."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from workup.storage import CassandraDb


@contextmanager
def statements(db: Any) -> Iterator[list[str]]:
    """Yields a list that collects one entry per statement sent while the block runs."""
    sent: list[str] = []
    if isinstance(db, CassandraDb):
        ask = db._ask

        async def counting(routed: Any, message: Any, result_metadata: Any, what: str) -> Any:
            sent.append(what)
            return await ask(routed, message, result_metadata, what)
        db._ask = counting                # type: ignore[method-assign]
        try:
            yield sent
        finally:
            del db._ask                   # the class's method again
    else:
        db._conn.set_trace_callback(sent.append)
        try:
            yield sent
        finally:
            db._conn.set_trace_callback(None)
