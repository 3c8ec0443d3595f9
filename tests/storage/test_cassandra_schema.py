"""Several processes of one service start at once on a keyspace nobody made yet (``workup worker
jobs --processes 2``, ``workup up`` on a fresh Cassandra): each must come up, whichever of them
made the keyspace and its tables."""

from __future__ import annotations

import secrets

import trio

from workup.services.jobs.store import TABLES
from workup.settings import Settings
from workup.storage import CassandraDb, keyspace_name


async def test_connections_racing_on_a_fresh_keyspace_all_come_up(cassandra_hosts):
    points = Settings(cassandra_hosts=cassandra_hosts).cassandra_contact_points()
    for _ in range(3):
        keyspace = keyspace_name(f"t{secrets.token_hex(5)}", "race")
        dbs: list[CassandraDb] = []
        errors: list[BaseException] = []

        async def one() -> None:
            try:
                dbs.append(await CassandraDb.connect(points, keyspace, TABLES))
            except Exception as e:          # noqa: BLE001 - collected and asserted below
                errors.append(e)

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(one)
        try:
            assert errors == [], errors
            assert len(dbs) == 4
            rows = await trio.to_thread.run_sync(lambda: list(dbs[0]._session.execute(
                "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s", (keyspace,))))
            assert {r["table_name"] for r in rows} == {t.name for t in TABLES}
        finally:
            if dbs:
                await dbs[0].drop_keyspace()
            for db in dbs:
                await db.aclose()


async def test_a_column_a_newer_release_declares_is_added_to_the_table_of_an_older_one(cassandra_hosts, tmp_path):
    """Cassandra and SQLite: a table made before a column was declared (the milestones' ``inbox``)
    gets it when the store is opened again, by several processes at once on Cassandra; the rows
    written before read it as ``None``, and it takes writes."""
    from workup.storage import SqliteDb, Table

    old = Table("evolving", {"k": "text", "a": "text"}, ("k",))
    new = Table("evolving", {"k": "text", "a": "text", "b": "text", "c": "bigint"}, ("k",))
    points = Settings(cassandra_hosts=cassandra_hosts).cassandra_contact_points()
    keyspace = keyspace_name(f"t{secrets.token_hex(5)}", "cols")
    first = await CassandraDb.connect(points, keyspace, [old])
    sqlite_old = SqliteDb(tmp_path / "s.db", [old])
    try:
        for db in (first, sqlite_old):
            await db.upsert(old, {"k": "before", "a": "x"})
        await sqlite_old.aclose()
        again: list[CassandraDb] = []

        async def one() -> None:
            again.append(await CassandraDb.connect(points, keyspace, [new]))
        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(one)
        sqlite_new = SqliteDb(tmp_path / "s.db", [new])
        try:
            for db in (again[0], sqlite_new):
                assert await db.select(new, {"k": "before"}) == [{"k": "before", "a": "x", "b": None, "c": None}]
                await db.upsert(new, {"k": "after", "a": "y", "b": "z", "c": 7})
                assert await db.select(new, {"k": "after"}) == [{"k": "after", "a": "y", "b": "z", "c": 7}]
        finally:
            await sqlite_new.aclose()
            for db in again:
                await db.aclose()
    finally:
        await first.drop_keyspace()
        await first.aclose()
