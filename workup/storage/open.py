"""Opening the store of a service: Cassandra when configured, else SQLite in the data dir."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, Sequence, TypeVar

import trio

from ..settings import Settings
from .cassandra import CassandraDb, keyspace_name
from .sqlite import SqliteDb
from .table import Db, Table

__all__ = ["open_db", "opened_store"]

T = TypeVar("T")


async def open_db(settings: Settings, service: str, tables: Sequence[Table]) -> Db:
    """Cassandra when ``cassandra_hosts`` is set, else SQLite ``<data_dir>/<service>.sqlite3``.
    The keyspace is ``<cassandra_keyspace_prefix>_<service>`` (default ``workup_<service>``)."""
    points = settings.cassandra_contact_points()
    if points:
        keyspace = keyspace_name(settings.cassandra_keyspace_prefix, service)
        return await CassandraDb.connect(points, keyspace, tables)
    return await trio.to_thread.run_sync(lambda: SqliteDb(settings.data_path / f"{service}.sqlite3", tables))


@asynccontextmanager
async def opened_store(settings: Settings, service: str, tables: Sequence[Table], factory: Callable[[Db], T]) -> AsyncIterator[T]:
    """``factory(db)`` on the service's database (:func:`open_db`), closed on exit."""
    db = await open_db(settings, service, tables)
    try:
        yield factory(db)
    finally:
        await db.aclose()
