"""``Db.select_in``: many keys read by a few statements, on SQLite and on the real Cassandra,
with the same rows as one read per key."""

from __future__ import annotations

import random
import secrets

import pytest

from workup.settings import Settings
from workup.storage import CassandraDb, SqliteDb, Table, keyspace_name

from ._count import statements

INDEX = Table("idx", {"term": "text", "created_ms": "bigint", "item": "text", "note": "text"},
              ("term",), (("created_ms", "DESC"), ("item", "DESC")))
ITEMS = Table("items", {"id": "text", "n": "bigint", "ok": "boolean"}, ("id",))


@pytest.fixture(params=["sqlite", "cassandra"])
async def db(request, tmp_path):
    if request.param == "sqlite":
        store = SqliteDb(tmp_path / "t.sqlite", [INDEX, ITEMS])
        yield store
        await store.aclose()
        return
    points = Settings(cassandra_hosts=request.getfixturevalue("cassandra_hosts")).cassandra_contact_points()
    cdb = await CassandraDb.connect(points, keyspace_name(f"t{secrets.token_hex(5)}", "selectin"), [INDEX, ITEMS])
    try:
        yield cdb
    finally:
        await cdb.drop_keyspace()
        await cdb.aclose()


def _key(row, columns):
    return tuple(row[c] for c in columns)


async def test_select_in_reads_what_one_read_per_key_reads(db):
    rnd = random.Random(11)
    terms = ["a", "b"]
    rows = [{"term": rnd.choice(terms), "created_ms": rnd.randrange(50), "item": f"i{i:03d}", "note": f"n{i}"}
            for i in range(400)]
    items = [{"id": f"x{i:03d}", "n": i, "ok": i % 3 == 0} for i in range(300)]
    await db.upsert_bulk([(INDEX, r) for r in rows] + [(ITEMS, r) for r in items])
    # present and absent keys, one asked twice, more than one statement's worth
    wanted = [{"created_ms": r["created_ms"], "item": r["item"]} for r in rows if r["term"] == "a"][:230]
    wanted += [{"created_ms": 7, "item": "nope"}, {"created_ms": 999, "item": "i001"}, wanted[0]]
    got = await db.select_in(INDEX, {"term": "a"}, wanted)
    one_each = await db.select_each(INDEX, [{"term": "a", **k} for k in wanted])
    assert sorted(_key(r, INDEX.key) for r in got) == sorted({_key(r[0], INDEX.key) for r in one_each if r})
    assert {r["item"]: r["note"] for r in got} == {r["item"]: r["note"] for r in rows
                                                    if r["term"] == "a" and r["item"] in {k["item"] for k in wanted}}
    ids = [{"id": f"x{i:03d}"} for i in rnd.sample(range(400), 250)]   # some past the 300 rows
    by_id = {r["id"]: r for r in await db.select_in(ITEMS, {}, ids)}
    assert by_id == {r["id"]: r for r in items if r["id"] in {k["id"] for k in ids}}
    assert all(isinstance(r["ok"], bool) for r in by_id.values())
    assert await db.select_in(ITEMS, {}, []) == []


async def test_select_in_sends_a_statement_per_chunk_not_per_key(db):
    await db.upsert_bulk([(ITEMS, {"id": f"y{i}", "n": i, "ok": True}) for i in range(250)]
                         + [(INDEX, {"term": "t", "created_ms": i, "item": "j", "note": ""}) for i in range(250)])
    few = [{"id": f"y{i}"} for i in range(21)]
    with statements(db) as sent:
        assert len(await db.select_in(ITEMS, {}, few)) == 21
        assert len(await db.select_in(INDEX, {"term": "t"}, [{"created_ms": i, "item": "j"} for i in range(21)])) == 21
    assert len(sent) == 2, sent
    with statements(db) as sent:
        assert len(await db.select_in(ITEMS, {}, [{"id": f"y{i}"} for i in range(250)])) == 250
    assert 1 <= len(sent) <= 3, sent          # chunks of 100 (Cassandra) or 200 (SQLite)
    with statements(db) as sent:
        assert await db.select_in(ITEMS, {}, []) == []
    assert sent == []


async def test_sqlite_seeks_each_key_rather_than_scanning_the_partition(tmp_path):
    """A term's partition holds every job under a common word: reading 3 of its keys must not
    walk the million others."""
    db = SqliteDb(tmp_path / "t.sqlite", [INDEX])
    try:
        with statements(db) as sent:
            await db.select_in(INDEX, {"term": "t"}, [{"created_ms": i, "item": "j"} for i in range(3)])
        plan = " ".join(str(r[3]) for r in db._conn.execute(f"EXPLAIN QUERY PLAN {sent[0]}"))
    finally:
        await db.aclose()
    assert "SEARCH t USING PRIMARY KEY (term=? AND created_ms=? AND item=?)" in plan, plan
