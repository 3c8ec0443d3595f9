"""SQLite adapter, the embedded default (``<data_dir>/payments.sqlite3``).

Money is stored as integer cents (exact; ``SUM`` stays exact too), timestamps as fixed-width
ISO-8601 UTC text (so they sort and compare as text). Every transaction is ``BEGIN IMMEDIATE``: it
takes the write lock up front, so transactions are serialised and the read-check-write of a
withdrawal or a payment cannot interleave with another; ``SQLITE_BUSY`` past the busy timeout is
retried a bounded number of times and counted.
"""

from __future__ import annotations

import datetime as dt
import queue
import random
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, TypeVar

import trio

from ...ids import utc_now
from ...problems import conflict
from .schema import migration_statements, pending
from .store import MAX_TX_ATTEMPTS, Dialect, SqlStore, SqlTx, contended

__all__ = ["SqliteStore"]

T = TypeVar("T")

_DIALECT = Dialect("?", "", "")
_TYPES = {"money": "INTEGER", "ts": "TEXT", "blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT"}


class _LiteTx(SqlTx):
    def money(self, value: Decimal) -> int:
        cents = value.scaleb(2)
        if cents != cents.to_integral_value():
            raise ValueError(f"{value} is not a whole number of cents")
        return int(cents)

    def decimal(self, value: Any) -> Decimal:
        return Decimal(int(value)).scaleb(-2)

    def ts(self, value: dt.datetime) -> str:
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")

    def datetime(self, value: str) -> dt.datetime:
        return dt.datetime.fromisoformat(value)


class SqliteStore(SqlStore):
    def __init__(self, path: Path, size: int = 4) -> None:
        super().__init__(size)
        self._path = path
        self._size = size
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path, size: int = 4) -> "SqliteStore":
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path, size)
        store._transaction(_migrate, ())
        return store

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._all.append(conn)
        return conn

    def _transaction(self, script: Callable[..., T], args: tuple) -> T:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            for attempt in range(1, MAX_TX_ATTEMPTS + 1):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    self.retries += 1
                    if attempt == MAX_TX_ATTEMPTS:
                        raise contended() from None
                    time.sleep(random.uniform(0, 0.005 * 2 ** attempt))
                    continue
                try:
                    result = script(_LiteTx(conn, _DIALECT), *args)
                except sqlite3.IntegrityError as exc:
                    conn.execute("ROLLBACK")
                    if "CHECK constraint" in str(exc) and "balance" in str(exc):
                        raise conflict("insufficient balance") from None
                    raise
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
                return result
            raise AssertionError("unreachable")
        finally:
            self._idle.put(conn)

    def pool_size(self) -> int:
        return self._size

    async def resize_pool(self, size: int) -> None:
        if size < 1:
            raise ValueError("the pool needs at least one connection")
        self._size = size
        self._set_threads(size)

    async def close(self) -> None:
        def close_all() -> None:
            with self._lock:
                conns, self._all = self._all, []
            for conn in conns:
                conn.close()
        await trio.to_thread.run_sync(close_all)


def _migrate(tx: _LiteTx) -> list[int]:
    tx.run("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied = [r[0] for r in tx.all("SELECT version FROM schema_migrations")]
    done = []
    for version, template in pending(applied):
        for statement in migration_statements(template, _TYPES):
            tx.run(statement)
        tx.run("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
               version, tx.ts(utc_now()))
        done.append(version)
    return done
