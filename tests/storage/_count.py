"""Counting the statements a :class:`~workup.storage.Db` adapter sends to its store: the
driver's requests on Cassandra, the executed statements on SQLite."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from workup.storage import CassandraDb


@contextmanager
def statements(db: Any) -> Iterator[list[str]]:
    """Yields a list that collects one entry per statement sent while the block runs."""
    sent: list[str] = []
    if isinstance(db, CassandraDb):
        session = db._session
        send = session.execute_async

        def counting(query: Any, *args: Any, **kw: Any) -> Any:
            sent.append(str(getattr(query, "query_string", query)))
            return send(query, *args, **kw)
        session.execute_async = counting
        try:
            yield sent
        finally:
            del session.execute_async     # the class's method again
    else:
        db._conn.set_trace_callback(sent.append)
        try:
            yield sent
        finally:
            db._conn.set_trace_callback(None)
