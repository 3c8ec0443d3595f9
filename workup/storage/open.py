"""Opening the store of a service: Cassandra when configured, else SQLite in the data dir."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable, Sequence, TypeVar

import trio

from .cassandra import CassandraDb, keyspace_name
from .sqlite import SqliteDb
from .table import Db, Table

__all__ = ["open_db", "opened_store"]

T = TypeVar("T")


async def open_db(settings: Any, service: str, tables: Sequence[Table]) -> Db:
    """Cassandra when ``cassandra_hosts`` is set, else SQLite ``<data_dir>/<service>.sqlite3``.
    The keyspace is ``<cassandra_keyspace_prefix>_<service>`` (default ``workup_<service>``)."""
    points = settings.cassandra_contact_points()
    if points:
        prefix = getattr(settings, "cassandra_keyspace_prefix", None) or "workup"
        return await CassandraDb.connect(points, keyspace_name(prefix, service), tables)
    return await trio.to_thread.run_sync(lambda: SqliteDb(settings.data_path / f"{service}.sqlite3", tables))


@asynccontextmanager
async def opened_store(settings: Any, service: str, tables: Sequence[Table], factory: Callable[[Db], T]) -> AsyncIterator[T]:
    """``factory(db)`` on the service's database (:func:`open_db`), closed on exit."""
    db = await open_db(settings, service, tables)
    try:
        yield factory(db)
    finally:
        await db.aclose()
