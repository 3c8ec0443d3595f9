"""The SQLite adapter of :class:`~.table.Db` (the embedded default)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

import trio

from .table import _SQLITE_TYPES, Row, Table, _in_keys, _insert_sql, _select_sql, _where

__all__ = ["SqliteDb"]

T = TypeVar("T")
_IN = 200   # keys per statement of select_in: bound parameters stay under SQLite's 999 of old builds


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
            have = {r[1] for r in self._conn.execute(f"PRAGMA table_info({t.name})")}
            for column in t.added(have):   # a data directory of an older release
                self._conn.execute(f"ALTER TABLE {t.name} ADD COLUMN {column} {_SQLITE_TYPES[t.columns[column]]}")
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

    def _together(self, statements: list[tuple[str, list[Any]]]) -> None:
        with self._conn:   # one transaction: one commit for all
            self._conn.execute("BEGIN")
            for sql, params in statements:
                self._conn.execute(sql, params)

    async def _inserts_together(self, writes: Sequence[tuple[Table, Row]], verb: str) -> None:
        if writes:
            statements = [(_insert_sql(t, r, verb), list(r.values())) for t, r in writes]
            await self._run(lambda: self._together(statements))

    async def create(self, writes: Sequence[tuple[Table, Row]], made_ms: int) -> None:
        await self._inserts_together(writes, "INSERT OR IGNORE")

    async def upsert_bulk(self, writes: Sequence[tuple[Table, Row]]) -> None:
        await self._inserts_together(writes, "INSERT OR REPLACE")   # one transaction: SQLite's cheapest bulk write

    async def delete_many(self, table: Table, keys: Sequence[Row]) -> None:
        if keys:
            clause, _ = _where(table, keys[0], None)
            statements = [(f"DELETE FROM {table.name} WHERE {clause}", list(k.values())) for k in keys]
            await self._run(lambda: self._together(statements))

    async def update_if(self, table: Table, key: Row, changes: Row, expect: Row) -> bool:
        sql, params = _update_if(table, key, changes, expect)
        return await self._run(lambda: self._conn.execute(sql, params).rowcount == 1)

    async def update(self, table: Table, key: Row, changes: Row) -> None:
        sql, params = _update_if(table, key, changes, {})
        await self._run(lambda: self._conn.execute(sql, params))

    async def update_if_then(self, table: Table, key: Row, changes: Row, expect: Row,
                             then: tuple[Table, Row]) -> bool:
        sql, params = _update_if(table, key, changes, expect)
        after, row = then
        upsert = _insert_sql(after, row, "INSERT OR REPLACE")

        def run() -> bool:
            with self._conn:   # one transaction: both or neither
                self._conn.execute("BEGIN")
                if self._conn.execute(sql, params).rowcount != 1:
                    return False
                self._conn.execute(upsert, list(row.values()))
                return True
        return await self._run(run)

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

    async def select_in(self, table: Table, where: Row, keys: Sequence[Row]) -> list[Row]:
        columns, values = _in_keys(keys)
        one = f"({', '.join('?' for _ in columns)})"
        # the keys as a VALUES table joined to the rows (CROSS JOIN keeps it outer): each key is a
        # primary-key seek; "(a, b) IN (VALUES ...)" would scan the whole partition instead
        match = " AND ".join([*(f"t.{c} = ?" for c in where),
                              *(f"t.{c} = k.column{i}" for i, c in enumerate(columns, 1))])

        def run() -> list[Row]:
            out: list[Row] = []
            for i in range(0, len(values), _IN):
                chunk = values[i:i + _IN]
                sql = (f"SELECT t.* FROM (VALUES {', '.join(one for _ in chunk)}) AS k "
                       f"CROSS JOIN {table.name} AS t WHERE {match}")
                params = [*(v for key in chunk for v in key), *where.values()]
                out += self._rows(table, self._conn.execute(sql, params))
            return out
        return await self._run(run) if values else []

    async def aclose(self) -> None:
        await self._run(self._conn.close)


def _update_if(table: Table, key: Row, changes: Row, expect: Row) -> tuple[str, list[Any]]:
    sets = ", ".join(f"{c} = ?" for c in changes)
    conds = [f"{c} = ?" for c in key] + [f"{c} IS ?" for c in expect]
    return (f"UPDATE {table.name} SET {sets} WHERE {' AND '.join(conds)}",
            [*changes.values(), *key.values(), *expect.values()])
