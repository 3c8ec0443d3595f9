"""Wide-row tables on Cassandra (scylla-driver) or SQLite, for the jobs and contracts stores.

A store is written once against :class:`Db` and a list of :class:`Table` declarations; the two
adapters turn them into CQL or SQLite. Tables are modelled the Cassandra way (one table per query,
partition key + clustering columns), so every operation the port offers is one Cassandra access
path: no secondary index, no ``ALLOW FILTERING``. State changes that race are conditional
(:meth:`Db.insert_if_absent`, :meth:`Db.update_if`): lightweight transactions on Cassandra, a
single conditional statement on SQLite.

Values are plain ``text`` / ``bigint`` / ``int`` / ``boolean``; the stores encode anything richer
(money as decimal text, lists as JSON) so both adapters hold the same bytes.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Protocol, Sequence, TypeVar

import trio

__all__ = ["Table", "Db", "SqliteDb", "CassandraDb", "open_db", "keyspace_name", "now_ms", "rfc3339", "derived_id", "OUTBOX", "Outbox", "opened_store", "run_relay"]

T = TypeVar("T")
Row = dict[str, Any]

_SQLITE_TYPES = {"text": "TEXT", "bigint": "INTEGER", "int": "INTEGER", "boolean": "INTEGER"}


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, str]                       # column -> text | bigint | int | boolean
    partition: tuple[str, ...]
    clustering: tuple[tuple[str, str], ...] = ()  # (column, "ASC" | "DESC"), same direction

    @property
    def key(self) -> tuple[str, ...]:
        return self.partition + tuple(c for c, _ in self.clustering)

    def order(self) -> str:
        return ", ".join(f"{c} {d}" for c, d in self.clustering)

    def cql(self) -> str:
        cols = ", ".join(f"{c} {t}" for c, t in self.columns.items())
        pk = f"({', '.join(self.partition)})"
        if self.clustering:
            pk += ", " + ", ".join(c for c, _ in self.clustering)
        ddl = f"CREATE TABLE IF NOT EXISTS {self.name} ({cols}, PRIMARY KEY ({pk}))"
        if self.clustering:
            ddl += f" WITH CLUSTERING ORDER BY ({self.order()})"
        return ddl

    def sqlite(self) -> str:
        cols = ", ".join(f"{c} {_SQLITE_TYPES[t]}" for c, t in self.columns.items())
        return (f"CREATE TABLE IF NOT EXISTS {self.name} ({cols}, "
                f"PRIMARY KEY ({', '.join(self.key)})) WITHOUT ROWID")


class Db(Protocol):
    async def insert_if_absent(self, table: Table, row: Row) -> bool:
        """Insert unless a row with that primary key exists; True when inserted."""
        ...

    async def upsert(self, table: Table, row: Row) -> None: ...

    async def upsert_many(self, table: Table, rows: Sequence[Row]) -> None:
        """Independent upserts at once (rows with the same columns)."""
        ...

    async def delete_many(self, table: Table, keys: Sequence[Row]) -> None: ...

    async def update_if(self, table: Table, key: Row, changes: Row, expect: Row) -> bool:
        """Set ``changes`` on the row at ``key`` only if each ``expect`` column equals its value
        (``None`` = null); True when applied. Cassandra takes a missing row for all-null, so an
        ``expect`` of only nulls must also name a column that is never null in a real row."""
        ...

    async def delete(self, table: Table, key: Row) -> None: ...

    async def select(self, table: Table, where: Row, *, after: Sequence[Any] | None = None,
                     limit: int | None = None) -> list[Row]:
        """Rows of one partition (``where`` = partition key, optionally a clustering prefix) in
        clustering order, strictly after the clustering key ``after``."""
        ...

    async def select_each(self, table: Table, wheres: Sequence[Row]) -> list[list[Row]]:
        """Many point or partition reads at once (in parallel on Cassandra)."""
        ...

    async def aclose(self) -> None: ...


def _where(table: Table, where: Row, after: Sequence[Any] | None) -> tuple[str, list[Any]]:
    clauses = [f"{c} = ?" for c in where]
    params = list(where.values())
    if after is not None:
        cols = [c for c, _ in table.clustering]
        op = "<" if table.clustering[0][1] == "DESC" else ">"
        clauses.append(f"({', '.join(cols)}) {op} ({', '.join('?' for _ in cols)})")
        params.extend(after)
    return " AND ".join(clauses), params


def _select_sql(table: Table, where: Row, after: Sequence[Any] | None, limit: int | None) -> tuple[str, list[Any]]:
    clause, params = _where(table, where, after)
    sql = f"SELECT * FROM {table.name} WHERE {clause}"
    if table.clustering and len(where) >= len(table.partition):
        sql += f" ORDER BY {table.order()}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return sql, params


def _insert_sql(table: Table, row: Row, verb: str = "INSERT") -> str:
    return f"{verb} INTO {table.name} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})"


def _qualified(table: Table, keyspace: str) -> Table:
    return Table(f"{keyspace}.{table.name}", table.columns, table.partition, table.clustering)


# --- SQLite --------------------------------------------------------------------------------------

class SqliteDb:
    """One connection in autocommit mode; calls run one at a time in a worker thread (SQLite
    serialises writers anyway), so each conditional statement is atomic."""

    def __init__(self, path: Path, tables: Sequence[Table]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self._conn.execute("PRAGMA synchronous=NORMAL")   # WAL: durable at checkpoints, never corrupt
        self._bools = {t.name: [c for c, ty in t.columns.items() if ty == "boolean"] for t in tables}
        for t in tables:
            self._conn.execute(t.sqlite())
        self._limiter = trio.CapacityLimiter(1)

    async def _run(self, fn: Callable[[], T]) -> T:
        return await trio.to_thread.run_sync(fn, limiter=self._limiter)

    def _rows(self, table: Table, cur: sqlite3.Cursor) -> list[Row]:
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r)) for r in cur.fetchall()]
        for r in rows:
            for c in self._bools[table.name]:
                if r.get(c) is not None:
                    r[c] = bool(r[c])
        return rows

    async def insert_if_absent(self, table: Table, row: Row) -> bool:
        sql = _insert_sql(table, row, "INSERT OR IGNORE")
        return await self._run(lambda: self._conn.execute(sql, list(row.values())).rowcount == 1)

    async def upsert(self, table: Table, row: Row) -> None:
        sql = _insert_sql(table, row, "INSERT OR REPLACE")
        await self._run(lambda: self._conn.execute(sql, list(row.values())))

    def _many(self, sql: str, params: list[list[Any]]) -> None:
        with self._conn:   # one transaction: one commit for all
            self._conn.execute("BEGIN")
            self._conn.executemany(sql, params)

    async def upsert_many(self, table: Table, rows: Sequence[Row]) -> None:
        if rows:
            sql = _insert_sql(table, rows[0], "INSERT OR REPLACE")
            await self._run(lambda: self._many(sql, [list(r.values()) for r in rows]))

    async def delete_many(self, table: Table, keys: Sequence[Row]) -> None:
        if keys:
            clause, _ = _where(table, keys[0], None)
            await self._run(lambda: self._many(f"DELETE FROM {table.name} WHERE {clause}",
                                               [list(k.values()) for k in keys]))

    async def update_if(self, table: Table, key: Row, changes: Row, expect: Row) -> bool:
        sets = ", ".join(f"{c} = ?" for c in changes)
        conds = [f"{c} = ?" for c in key] + [f"{c} IS ?" for c in expect]
        sql = f"UPDATE {table.name} SET {sets} WHERE {' AND '.join(conds)}"
        params = [*changes.values(), *key.values(), *expect.values()]
        return await self._run(lambda: self._conn.execute(sql, params).rowcount == 1)

    async def delete(self, table: Table, key: Row) -> None:
        clause, params = _where(table, key, None)
        await self._run(lambda: self._conn.execute(f"DELETE FROM {table.name} WHERE {clause}", params))

    async def select(self, table: Table, where: Row, *, after: Sequence[Any] | None = None,
                     limit: int | None = None) -> list[Row]:
        sql, params = _select_sql(table, where, after, limit)
        return await self._run(lambda: self._rows(table, self._conn.execute(sql, params)))

    async def select_each(self, table: Table, wheres: Sequence[Row]) -> list[list[Row]]:
        def run() -> list[list[Row]]:
            out = []
            for w in wheres:
                sql, params = _select_sql(table, w, None, None)
                out.append(self._rows(table, self._conn.execute(sql, params)))
            return out
        return await self._run(run) if wheres else []

    async def aclose(self) -> None:
        await self._run(self._conn.close)


# --- Cassandra -----------------------------------------------------------------------------------

class CassandraDb:
    """A scylla-driver session on one keyspace, bridged to trio: statements go out through the
    driver's async API (``execute_async``) and its callbacks wake the waiting trio task, so no
    thread blocks per query; a limiter bounds the queries in flight. Connecting, preparing and
    shutting down block, so they run in a worker thread. Statements are prepared once."""

    def __init__(self, cluster: Any, session: Any, keyspace: str, in_flight: int) -> None:
        self._cluster = cluster
        self._session = session
        self.keyspace = keyspace
        self._prepared: dict[str, Any] = {}
        self._tables: dict[str, Table] = {}
        self._limiter = trio.CapacityLimiter(in_flight)

    def _t(self, table: Table) -> Table:
        """The table under its keyspace-qualified name (no ``USE``: prepared statements are
        unambiguous that way)."""
        q = self._tables.get(table.name)
        if q is None:
            q = self._tables[table.name] = _qualified(table, self.keyspace)
        return q

    @classmethod
    async def connect(cls, contact_points: list[tuple[str, int]], keyspace: str,
                      tables: Sequence[Table], *, replication: int = 1, in_flight: int = 128) -> "CassandraDb":
        def setup() -> CassandraDb:
            from cassandra import AlreadyExists, ConsistencyLevel
            from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
            from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
            from cassandra.query import dict_factory

            profile = ExecutionProfile(
                load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
                consistency_level=ConsistencyLevel.LOCAL_QUORUM,
                serial_consistency_level=ConsistencyLevel.LOCAL_SERIAL,
                row_factory=dict_factory, request_timeout=15,
            )
            port = contact_points[0][1]
            cluster = Cluster([h for h, _ in contact_points], port=port,
                              execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                              connect_timeout=10)
            try:
                session = cluster.connect()
                session.execute(
                    f"CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = "
                    f"{{'class': 'SimpleStrategy', 'replication_factor': {int(replication)}}}")
                existing = set(cluster.metadata.keyspaces[keyspace].tables)
                # missing tables only, all at once (the driver waits for schema agreement after each)
                pending = [session.execute_async(_qualified(t, keyspace).cql(), timeout=60)
                           for t in tables if t.name not in existing]
                for future in pending:
                    try:
                        future.result()
                    except AlreadyExists:     # another process made it meanwhile
                        pass
            except BaseException:
                cluster.shutdown()
                raise
            return cls(cluster, session, keyspace, in_flight)

        return await trio.to_thread.run_sync(setup)

    async def _stmt(self, cql: str) -> Any:
        stmt = self._prepared.get(cql)
        if stmt is None:
            stmt = await trio.to_thread.run_sync(self._session.prepare, cql)
            self._prepared[cql] = stmt
        return stmt

    async def _exec(self, cql: str, params: Sequence[Any]) -> list[Row]:
        """All rows of one statement (every page)."""
        stmt = await self._stmt(cql)
        async with self._limiter:
            token = trio.lowlevel.current_trio_token()
            done = trio.Event()
            rows: list[Row] = []
            failure: list[BaseException] = []
            future = self._session.execute_async(stmt, list(params))

            def wake() -> None:
                try:
                    token.run_sync_soon(done.set)
                except trio.RunFinishedError:   # the waiting task's run is gone
                    pass

            def on_page(page: list[Row]) -> None:   # in the driver's I/O thread
                if page:   # None for statements without rows
                    rows.extend(page)
                if future.has_more_pages:
                    future.start_fetching_next_page()
                else:
                    wake()

            def on_error(exc: BaseException) -> None:
                failure.append(exc)
                wake()

            future.add_callbacks(on_page, on_error)
            await done.wait()
        if failure:
            raise failure[0]
        return rows

    async def _applied(self, cql: str, params: Sequence[Any]) -> bool:
        rows = await self._exec(cql, params)
        return bool(rows and rows[0].get("[applied]"))

    async def _each(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[list[Row]]:
        results: list[list[Row]] = [[] for _ in statements]

        async def one(i: int, cql: str, params: Sequence[Any]) -> None:
            results[i] = await self._exec(cql, params)
        async with trio.open_nursery() as nursery:
            for i, (cql, params) in enumerate(statements):
                nursery.start_soon(one, i, cql, params)
        return results

    async def insert_if_absent(self, table: Table, row: Row) -> bool:
        return await self._applied(_insert_sql(self._t(table), row) + " IF NOT EXISTS", list(row.values()))

    async def upsert(self, table: Table, row: Row) -> None:
        await self._exec(_insert_sql(self._t(table), row), list(row.values()))

    async def upsert_many(self, table: Table, rows: Sequence[Row]) -> None:
        if rows:
            cql = _insert_sql(self._t(table), rows[0])
            await self._each([(cql, list(r.values())) for r in rows])

    async def delete_many(self, table: Table, keys: Sequence[Row]) -> None:
        if keys:
            clause, _ = _where(table, keys[0], None)
            cql = f"DELETE FROM {self._t(table).name} WHERE {clause}"
            await self._each([(cql, list(k.values())) for k in keys])

    async def update_if(self, table: Table, key: Row, changes: Row, expect: Row) -> bool:
        sets = ", ".join(f"{c} = ?" for c in changes)
        cond = " AND ".join(f"{c} = ?" for c in expect) if expect else "EXISTS"
        cql = f"UPDATE {self._t(table).name} SET {sets} WHERE {' AND '.join(f'{c} = ?' for c in key)} IF {cond}"
        return await self._applied(cql, [*changes.values(), *key.values(), *expect.values()])

    async def delete(self, table: Table, key: Row) -> None:
        clause, params = _where(table, key, None)
        await self._exec(f"DELETE FROM {self._t(table).name} WHERE {clause}", params)

    async def select(self, table: Table, where: Row, *, after: Sequence[Any] | None = None,
                     limit: int | None = None) -> list[Row]:
        return await self._exec(*_select_sql(self._t(table), where, after, limit))

    async def select_each(self, table: Table, wheres: Sequence[Row]) -> list[list[Row]]:
        return await self._each([_select_sql(self._t(table), w, None, None) for w in wheres])

    async def drop_keyspace(self) -> None:
        await trio.to_thread.run_sync(
            lambda: self._session.execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}", timeout=60))

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self._cluster.shutdown)


def keyspace_name(prefix: str, service: str) -> str:
    """``workup`` + ``jobs`` → ``workup_jobs`` (Cassandra identifiers: letters, digits, _)."""
    name = f"{prefix}_{service}".lower()
    if not name.replace("_", "").isalnum() or not name[0].isalpha() or len(name) > 48:
        raise ValueError(f"bad Cassandra keyspace name {name!r}")
    return name


async def open_db(settings: Any, service: str, tables: Sequence[Table]) -> Db:
    """Cassandra when ``cassandra_hosts`` is set, else SQLite ``<data_dir>/<service>.sqlite3``.
    The keyspace is ``<cassandra_keyspace_prefix>_<service>`` (default ``workup_<service>``)."""
    points = settings.cassandra_contact_points()
    if points:
        prefix = getattr(settings, "cassandra_keyspace_prefix", None) or "workup"
        return await CassandraDb.connect(points, keyspace_name(prefix, service), tables)
    return await trio.to_thread.run_sync(lambda: SqliteDb(settings.data_path / f"{service}.sqlite3", tables))


# --- timestamps: stored as integer milliseconds (Cassandra's precision), shown as RFC 3339 UTC ----

def now_ms() -> int:
    import time
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    import datetime as dt
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def derived_id(request_id: str, purpose: str) -> str:
    """An id derived from the request id, so a redelivered create finds what it already made."""
    import uuid
    return uuid.uuid5(uuid.UUID("6f1c3a52-8a0e-4c1e-9a57-2b0f4d7e9c11"), f"{purpose}:{request_id}").hex


# --- outbox: persisted intents of cross-service steps, retried by a relay until done ------------

OUTBOX = Table("outbox", {"kind": "text", "item": "text", "created_ms": "bigint"}, ("kind",), (("item", "ASC"),))


class Outbox:
    """``(kind, item)`` rows written before a cross-service step and deleted once the peer has
    acknowledged it; a background relay finishes whatever is left (after a crash, say)."""

    def __init__(self, db: Db) -> None:
        self.db = db

    async def add(self, kind: str, item: str, now: int) -> None:
        await self.db.upsert(OUTBOX, {"kind": kind, "item": item, "created_ms": now})

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        """``(item, created_ms)`` of the intents of ``kind`` still to do."""
        rows = await self.db.select(OUTBOX, {"kind": kind}, limit=limit)
        return [(r["item"], r["created_ms"]) for r in rows]

    async def done(self, kind: str, item: str) -> None:
        await self.db.delete(OUTBOX, {"kind": kind, "item": item})


@asynccontextmanager
async def opened_store(settings: Any, service: str, tables: Sequence[Table], factory: Callable[[Db], T]) -> AsyncIterator[T]:
    """``factory(db)`` on the service's database (:func:`open_db`), closed on exit."""
    db = await open_db(settings, service, tables)
    try:
        yield factory(db)
    finally:
        await db.aclose()


async def run_relay(once: Callable[[], Awaitable[int]], interval: float, log: logging.Logger) -> None:
    """Call ``once`` every ``interval`` seconds forever; a failure (a store outage, say) is
    logged and retried, never fatal."""
    while True:
        await trio.sleep(interval)
        try:
            await once()
        except Exception:
            log.exception("outbox relay failed; retrying")
