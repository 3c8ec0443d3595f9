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
