"""Store fixtures: every store contract test runs against SQLite and against Cassandra.

Cassandra keyspaces are ``<prefix>_jobs`` / ``<prefix>_contracts`` with a prefix unique to the
test session (schema made once, by the first test, dropped at the end), so parallel runs by
others never meet. :class:`DiesBefore` stands for a worker killed between an entity's index rows
and its row.
"""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Sequence

import pytest
import trio

from workup.settings import Settings
from workup.storage import CassandraDb, Table, keyspace_name, opened_store

KINDS = ["sqlite", "cassandra"]


@pytest.fixture(scope="session")
def keyspace_prefix(cassandra_hosts: str) -> Any:
    prefix = f"t{secrets.token_hex(5)}"
    yield prefix
    points = Settings(cassandra_hosts=cassandra_hosts).cassandra_contact_points()

    async def drop() -> None:
        for service in ("jobs", "contracts"):
            db = await CassandraDb.connect(points, keyspace_name(prefix, service), [])
            try:
                await db.drop_keyspace()
            finally:
                await db.aclose()
    trio.run(drop)


def store_settings(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Settings:
    if kind == "sqlite":
        return Settings(data_dir=str(tmp_path))
    return Settings(data_dir=str(tmp_path), cassandra_hosts=request.getfixturevalue("cassandra_hosts"),
                    cassandra_keyspace_prefix=request.getfixturevalue("keyspace_prefix"))


@asynccontextmanager
async def store_of(kind: str, tmp_path: Path, request: pytest.FixtureRequest, service: str,
                   tables: Sequence[Table], factory: Callable[[Any], Any]) -> AsyncIterator[Any]:
    async with opened_store(store_settings(kind, tmp_path, request), service, tables, factory) as store:
        yield store


class DiesBefore:
    """A store's Db as a worker killed after the index rows, before the row of ``table`` (what
    the reliability runs' SIGKILLs did): that conditional insert raises instead."""

    def __init__(self, db: Any, table: str) -> None:
        self._db, self._table = db, table

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def insert_if_absent(self, table: Table, row: Any) -> bool:
        if table.name == self._table:
            raise RuntimeError(f"killed before the {self._table} row")
        return await self._db.insert_if_absent(table, row)

    async def create(self, writes: Any, made_ms: int) -> None:
        """The rows before the first of ``table`` written (as when ``Db.create`` needs several
        batches: the row that means "complete" comes last), then the kill."""
        cut = next((i for i, (t, _) in enumerate(writes) if t.name == self._table), None)
        await self._db.create(writes if cut is None else writes[:cut], made_ms)
        if cut is not None:
            raise RuntimeError(f"killed before the {self._table} row")
