"""PostgreSQL adapter: psycopg 3 + ``psycopg_pool.ConnectionPool`` (resizable live).

Transactions run at READ COMMITTED with explicit ``SELECT ... FOR UPDATE`` row locks taken in one
global order (see :mod:`.ops`); serialization failures and deadlocks (which that order should
make impossible) are retried a bounded number of times and counted. ``CHECK (balance >= 0)`` is
the last line of defence: if it ever fires, the transaction rolls back and the caller gets 409.

Round trips: a transaction runs in libpq's pipeline mode on an autocommit connection, with its
own ``BEGIN``/``COMMIT``: ``BEGIN`` travels with the first statement, and the writes queued by
:meth:`SqlTx.queue` travel with the ``COMMIT`` (an error in any of them aborts the whole
transaction, raised before the script's answer is used). A script of one statement runs without
``BEGIN``/``COMMIT`` at all. Statements repeated on a connection are prepared by psycopg
(``prepare_threshold``). The isolation level is the session default
(``default_transaction_isolation``), so a ``BEGIN`` of ours and a single statement both get it.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from decimal import Decimal
from typing import Any, Callable, TypeVar

import psycopg
import trio
from psycopg import errors as pg_errors
from psycopg import sql as pg_sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import ConnectionPool, PoolClosed

from ...problems import conflict
from .schema import migration_statements, pending
from .store import MAX_TX_ATTEMPTS, Dialect, SqlStore, SqlTx, contended

__all__ = ["PostgresStore", "ensure_database", "StoreUnavailable"]

log = logging.getLogger("workup.payments.postgres")
T = TypeVar("T")

_DIALECT = Dialect("%s", " FOR UPDATE", " FOR UPDATE SKIP LOCKED")
_TYPES = {"money": "NUMERIC(14,2)", "ts": "TIMESTAMPTZ", "blob": "BYTEA",
          "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"}
_MIGRATION_LOCK = 0x776F726B7570  # pg_advisory_xact_lock key: one migrator at a time
_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)
_ISOLATIONS = ("read committed", "serializable")


class StoreUnavailable(RuntimeError):
    """The database cannot be reached or prepared; ``str()`` is one line."""


class _PgTx(SqlTx):
    """Over the connection itself (a cursor per statement read: in pipeline mode each statement's
    result stays with its own cursor), and ``writes``, one cursor shared by the statements whose
    results nobody reads (:meth:`queue`, and ``BEGIN``/``COMMIT``): a cursor per statement was a
    tenth of a transaction's CPU in psycopg."""

    def __init__(self, conn: psycopg.Connection, pipeline: psycopg.Pipeline | None,
                 writes: psycopg.Cursor | None = None) -> None:
        super().__init__(conn, _DIALECT)
        self._pipeline = pipeline
        self._writes = writes

    def queue(self, sql: str, *params: Any) -> None:
        (self._writes or self._target).execute(self._dialect.sql(sql), params)

    def run(self, sql: str, *params: Any) -> int:
        cur = self._target.execute(self._dialect.sql(sql), params)
        if self._pipeline is not None:
            self._pipeline.sync()      # rowcount is known once the result is in
        return int(cur.rowcount)

    def send(self, sql: str, *params: Any) -> Callable[[], list[tuple]]:
        """In a pipeline the rows arrive with the first read after it, or with the ``COMMIT``; the
        cursor holds them then, and reading them after the commit touches the connection no more."""
        if self._pipeline is None:
            return super().send(sql, *params)
        return self._target.execute(self._dialect.sql(sql), params).fetchall

    def money(self, value: Decimal) -> Decimal:
        return value

    def decimal(self, value: Any) -> Decimal:
        return Decimal(value).quantize(Decimal("0.01"))

    def ts(self, value: dt.datetime) -> dt.datetime:
        return value

    def datetime(self, value: dt.datetime) -> dt.datetime:
        return value.astimezone(dt.timezone.utc)


def _conninfo(url: str, application_name: str) -> str:
    params = conninfo_to_dict(url)
    params.setdefault("application_name", application_name)
    params.setdefault("connect_timeout", 5)
    return make_conninfo("", **params)


def ensure_database(url: str) -> None:
    """Create the URL's database when it does not exist (connecting to ``postgres`` to do it)."""
    params = conninfo_to_dict(url)
    name = str(params.get("dbname") or "postgres")
    admin = make_conninfo("", **{**params, "dbname": "postgres", "connect_timeout": 5})
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
                try:
                    conn.execute(pg_sql.SQL("CREATE DATABASE {}").format(pg_sql.Identifier(name)))
                except pg_errors.DuplicateDatabase:
                    pass   # created by a concurrent start-up
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"payments: cannot reach PostgreSQL: {str(exc).strip().splitlines()[0]}") from None


def _migrate(conn: psycopg.Connection) -> list[int]:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                     "(version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
        applied = [r[0] for r in conn.execute("SELECT version FROM schema_migrations").fetchall()]
        done = []
        for version, template in pending(applied):
            for statement in migration_statements(template, _TYPES):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            done.append(version)
        return done


class PostgresStore(SqlStore):
    """Open with :meth:`open` (blocking: call it in a thread); close with :meth:`close`."""

    def __init__(self, url: str, size: int, application_name: str = "workup-payments",
                 isolation: str = "read committed") -> None:
        super().__init__(size)
        if isolation not in _ISOLATIONS:
            raise ValueError(f"isolation must be one of {_ISOLATIONS}")
        self._conninfo = _conninfo(url, application_name)
        self._size = size
        level = isolation.replace(" ", "\\ ")     # a space in libpq's options is escaped
        self._options = f"-c timezone=UTC -c default_transaction_isolation={level}"
        self._pool = self._new_pool(size)

    def _new_pool(self, size: int) -> ConnectionPool:
        return ConnectionPool(self._conninfo, min_size=size, max_size=size, open=False, timeout=30,
                              kwargs={"autocommit": True, "options": self._options}, name="workup-payments")

    @classmethod
    def open(cls, url: str, size: int = 4, application_name: str = "workup-payments",
             isolation: str = "read committed") -> "PostgresStore":
        """``isolation``: "read committed" (the default: explicit row locks make it safe) or
        "serializable" (for the benchmark: the same scripts, with PostgreSQL's conflict aborts
        retried)."""
        ensure_database(url)
        store = cls(url, size, application_name, isolation)
        try:
            store._pool.open(wait=True, timeout=15)
            with store._pool.connection() as conn:
                applied = _migrate(conn)
        except Exception as exc:
            store._pool.close()
            raise StoreUnavailable(f"payments: cannot open PostgreSQL store: {str(exc).strip().splitlines()[0]}") from None
        if applied:
            log.info("payments schema migrated to version %s", applied[-1])
        return store

    def _transaction(self, script: Callable[..., T], args: tuple) -> T:
        return self._attempts(_pipelined, script, args)

    def _statement(self, script: Callable[..., T], args: tuple) -> T:
        return self._attempts(_alone, script, args)

    def _attempts(self, how: Callable[[psycopg.Connection, Callable[..., T], tuple], T],
                  script: Callable[..., T], args: tuple) -> T:
        for attempt in range(1, MAX_TX_ATTEMPTS + 1):
            pool = self._pool          # read once: a resize may swap it meanwhile
            try:
                with pool.connection() as conn:
                    return how(conn, script, args)
            except PoolClosed:
                if pool is self._pool or attempt == MAX_TX_ATTEMPTS:
                    raise
                continue               # swapped by resize_pool between the read and the checkout
            except _RETRYABLE as exc:
                self.retries += 1
                if attempt == MAX_TX_ATTEMPTS:
                    log.warning("transaction gave up after %d attempts: %s", attempt, exc)
                    raise contended() from None
                time.sleep(random.uniform(0, 0.005 * 2 ** attempt))   # jittered backoff
            except pg_errors.CheckViolation:
                raise conflict("insufficient balance") from None
        raise AssertionError("unreachable")

    def pool_size(self) -> int:
        return self._size

    async def resize_pool(self, size: int) -> None:
        """Live: growing opens connections now; shrinking swaps in a smaller pool and closes the
        old one (its connections in use finish their transaction first)."""
        if size < 1:
            raise ValueError("the pool needs at least one connection")
        old = self._pool
        if size >= self._size:
            old.resize(size, size)
            await trio.to_thread.run_sync(lambda: old.wait(timeout=15))
        else:
            new = self._new_pool(size)
            await trio.to_thread.run_sync(lambda: new.open(wait=True, timeout=15))
            self._pool = new
            await trio.to_thread.run_sync(lambda: old.close(timeout=30))
        self._size = size
        self._set_threads(size)

    async def close(self) -> None:
        await trio.to_thread.run_sync(lambda: self._pool.close(timeout=10))


def _alone(conn: psycopg.Connection, script: Callable[..., T], args: tuple) -> T:
    """A script of one statement on the autocommit connection: the statement is its transaction."""
    return script(_PgTx(conn, None), *args)


def _pipelined(conn: psycopg.Connection, script: Callable[..., T], args: tuple) -> T:
    """``BEGIN``, the script, ``COMMIT`` in pipeline mode; any error rolls back before it is raised
    (the pool then gets the connection back idle, not in a failed transaction)."""
    try:
        with conn.pipeline() as pipeline:
            writes = conn.cursor()
            writes.execute(b"BEGIN", prepare=False)
            result = script(_PgTx(conn, pipeline, writes), *args)
            writes.execute(b"COMMIT", prepare=False)
        # leaving the pipeline syncs it (a sync of our own before would cost one more round trip):
        # the queued writes and the COMMIT, their errors raise here
    except BaseException:
        _rollback(conn)
        raise
    return result


def _rollback(conn: psycopg.Connection) -> None:
    """End whatever is left of the transaction with psycopg's own rollback: it leaves an aborted
    pipeline first, and forgets the statements it prepared meanwhile (their ``PREPARE`` may have
    been skipped by the abort). A broken connection is left to the pool, which discards it."""
    for _ in range(2):
        try:
            conn.rollback()
            return
        except psycopg.Error as exc:     # the aborted pipeline's error, reported once more
            log.debug("rollback after a failed transaction: %s", exc)
