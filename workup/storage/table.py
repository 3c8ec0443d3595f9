"""Table declarations, the :class:`Db` port and the SQL both adapters share."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Collection, Protocol, Sequence

__all__ = ["Table", "Db", "Row", "located"]

Row = dict[str, Any]

_SQLITE_TYPES = {"text": "TEXT", "bigint": "INTEGER", "int": "INTEGER", "boolean": "INTEGER"}


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, str]                       # column -> text | bigint | int | boolean
    partition: tuple[str, ...]
    clustering: tuple[tuple[str, str], ...] = ()  # (column, "ASC" | "DESC"), same direction
    # Cassandra only: how long deletion markers are kept (default 10 days). A queue-like table
    # whose rows are written and soon deleted (the outbox) sets it low, or its partitions fill
    # with tombstones that every read must step over (and fail on past 100k).
    gc_grace_seconds: int | None = None
    # Cassandra only: rows expire this many seconds after their last write (the inbox's answers)
    ttl_seconds: int | None = None

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
        options = []
        if self.clustering:
            options.append(f"CLUSTERING ORDER BY ({self.order()})")
        if self.gc_grace_seconds is not None:
            options.append(f"gc_grace_seconds = {int(self.gc_grace_seconds)}")
        if self.ttl_seconds is not None:
            options.append(f"default_time_to_live = {int(self.ttl_seconds)}")
        if options:
            ddl += " WITH " + " AND ".join(options)
        return ddl

    def sqlite(self) -> str:
        cols = ", ".join(f"{c} {_SQLITE_TYPES[t]}" for c, t in self.columns.items())
        return (f"CREATE TABLE IF NOT EXISTS {self.name} ({cols}, "
                f"PRIMARY KEY ({', '.join(self.key)})) WITHOUT ROWID")

    def added(self, existing: Collection[str]) -> list[str]:
        """The columns a table made by an older release lacks (``existing``: its columns now),
        in declaration order: each adapter adds them when it opens the store (a new column is
        ``null`` in the rows written before, which every reader of it takes as "none yet")."""
        return [c for c in self.columns if c not in existing]


class Db(Protocol):
    async def insert_if_absent(self, table: Table, row: Row) -> bool:
        """Insert unless a row with that primary key exists; True when inserted."""
        ...

    async def upsert(self, table: Table, row: Row) -> None: ...

    async def create(self, writes: Sequence[tuple[Table, Row]], made_ms: int) -> None:
        """Rows a command makes, as made at ``made_ms``, which every attempt of the command agrees
        on (a redelivery, a relay's twin: ids derived, the time of the first attempt), so every
        attempt writes the same rows: none of them undoes a change made after ``made_ms``.
        Cassandra writes them with ``made_ms`` as their write time (any later write wins over a
        late attempt) in one logged batch (or a few, in order, for rows too big for one: the row
        whose presence means "complete" goes last); SQLite keeps a row already there, in one
        transaction. What ``INSERT … IF NOT EXISTS`` guarded, without its lightweight transaction."""
        ...

    async def upsert_bulk(self, writes: Sequence[tuple[Table, Row]]) -> None:
        """Many upserts for bulk loading (``workup bench corpus``): no atomicity between them,
        as cheap as the store allows (on Cassandra unlogged batches, one per partition where
        rows share one, sent concurrently; one transaction on SQLite)."""
        ...

    async def delete_many(self, table: Table, keys: Sequence[Row]) -> None:
        """Deletes of an entity's index rows, in one round trip: an unlogged batch on Cassandra
        (readers check every index row against the entity's own row, so none needs the others
        gone with it; a batch log would buy nothing), one transaction on SQLite."""
        ...

    async def update_if(self, table: Table, key: Row, changes: Row, expect: Row) -> bool:
        """Set ``changes`` on the row at ``key`` only if each ``expect`` column equals its value
        (``None`` = null); True when applied. Cassandra takes a missing row for all-null, so an
        ``expect`` of only nulls must also name a column that is never null in a real row."""
        ...

    async def update(self, table: Table, key: Row, changes: Row) -> None:
        """Set ``changes`` on the existing row at ``key``, unconditionally (no lightweight
        transaction: for a value every writer agrees on, e.g. an id derived from the row's own)."""
        ...

    async def update_if_then(self, table: Table, key: Row, changes: Row, expect: Row,
                             then: tuple[Table, Row]) -> bool:
        """:meth:`update_if`, and only when it applied, the upsert ``then`` (a command's inbox row,
        ``storage/inbox.py``): one transaction on SQLite; on Cassandra the lightweight
        transaction, then the plain write (a process that dies between the two loses ``then``)."""
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

    async def select_in(self, table: Table, where: Row, keys: Sequence[Row]) -> list[Row]:
        """The rows at many primary keys by one statement, not one per key: ``where`` fixes the
        partition (or is empty) and each of ``keys`` (same columns in each) gives the rest of a
        key: ``id IN ?`` across partitions, ``(created_ms, job_id) IN ?`` inside one. Cassandra
        takes a multi-column ``IN`` on clustering columns only, so ``keys`` is either one
        partition-key column or clustering columns. Each row once, in no particular order; a key
        without a row has none (long ``keys`` go as a few statements)."""
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


def _in_keys(keys: Sequence[Row]) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The columns of ``keys`` and their distinct values (a key asked twice is read once)."""
    columns = list(keys[0]) if keys else []
    return columns, list(dict.fromkeys(tuple(k[c] for c in columns) for k in keys))


def _insert_sql(table: Table, row: Row, verb: str = "INSERT") -> str:
    return f"{verb} INTO {table.name} ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})"


def create_batches(writes: Sequence[tuple[Table, Row]], limit: int) -> list[list[tuple[Table, Row]]]:
    """``writes`` cut, in order, into runs whose values take at most ``limit`` bytes (a row
    bigger than that alone): Cassandra refuses a batch past ``batch_size_fail_threshold`` (50 KiB
    by default), and a command's rows are rarely near it (one chunk: all or none)."""
    chunks: list[list[tuple[Table, Row]]] = []
    size = limit + 1
    for table, row in writes:
        n = sum(len(v.encode()) if isinstance(v, str) else len(v) if isinstance(v, bytes) else 8 for v in row.values())
        if size + n > limit:
            chunks.append([])
            size = 0
        chunks[-1].append((table, row))
        size += n
    return chunks


def _qualified(table: Table, keyspace: str) -> Table:
    return dataclasses.replace(table, name=f"{keyspace}.{table.name}")


async def located(db: Db, index: Table, state: Table, key: Row) -> Row | None:
    """The ``state`` row that the ``index`` row at ``key`` points at (an index table holds the
    whole primary key of its state table), or None."""
    refs = await db.select(index, key)
    if not refs:
        return None
    rows = await db.select(state, {k: refs[0][k] for k in state.key})
    return rows[0] if rows else None
