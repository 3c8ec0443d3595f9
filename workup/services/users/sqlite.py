"""Embedded users store: one SQLite file (``<data_dir>/users.sqlite3``), WAL mode so several
worker processes can share it. The document is JSON; the columns beside it carry what is queried
or constrained (the unique lower-cased email, the version for compare-and-set, the outbox flag)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import msgspec

from ...runtime.inbox import Recorded
from .records import UserRecord
from .store import OUTBOX_FLAGS, DriverOps, DriverStore, EmailTaken, Threaded, from_document, to_document

__all__ = ["SqliteUserStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    email_key TEXT NOT NULL UNIQUE,
    version INTEGER NOT NULL,
    wallet_pending INTEGER NOT NULL DEFAULT 0,
    revoke_pending INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_wallet_pending ON users (wallet_pending) WHERE wallet_pending = 1;
CREATE INDEX IF NOT EXISTS users_revoke_pending ON users (revoke_pending) WHERE revoke_pending = 1;
"""

# Fields that live in their own column (the outbox flags) and are never taken from the JSON.
_COLUMNS = OUTBOX_FLAGS
_SELECT = "SELECT version, wallet_pending, revoke_pending, doc FROM users"


class _Pool:
    """Connections reused across threads (one thread uses one connection at a time)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.max_idle = 1

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def acquire(self) -> sqlite3.Connection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self.connect()

    def release(self, conn: sqlite3.Connection) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            self.max_idle = 0  # connections still out close when they come back
        for conn in idle:
            conn.close()


class SqliteUserStore(DriverStore):
    _ops: DriverOps  # set below, once the operations are defined

    def __init__(self, path: Path, pool_size: int = 4) -> None:
        self._pool = _Pool(path)
        self._threads = Threaded(pool_size)
        self._pool.max_idle = pool_size

    @classmethod
    async def open(cls, path: Path, pool_size: int = 4) -> "SqliteUserStore":
        path.parent.mkdir(parents=True, exist_ok=True)
        store = cls(path, pool_size)
        await store._threads.run(store._setup)
        return store

    def _setup(self) -> None:
        conn = self._pool.acquire()
        try:
            conn.executescript(_SCHEMA)
        finally:
            self._pool.release(conn)

    def _run(self, fn, *args):
        conn = self._pool.acquire()
        try:
            return fn(conn, *args)
        finally:
            self._pool.release(conn)

    async def _call(self, fn, *args):
        return await self._threads.run(self._run, fn, *args)

    # --- port (the rest comes from DriverStore) -------------------------------------------------

    def pool_size(self) -> int:
        return self._threads.size

    async def resize_pool(self, size: int) -> None:
        self._threads.resize(size)
        self._pool.max_idle = max(1, size)

    async def aclose(self) -> None:
        await self._threads.run(self._pool.close)


def _doc_json(user: UserRecord) -> str:
    doc = to_document(user)
    for column in _COLUMNS:
        doc.pop(column, None)
    return msgspec.json.encode(doc).decode()


def _row_to_user(row: tuple) -> UserRecord:
    version, wallet_pending, revoke_pending, doc = row
    data = msgspec.json.decode(doc)
    data.update(version=version, wallet_pending=bool(wallet_pending), revoke_pending=bool(revoke_pending))
    return from_document(data)


def _insert(conn: sqlite3.Connection, user: UserRecord) -> None:
    try:
        conn.execute("INSERT INTO users (id, email_key, version, wallet_pending, revoke_pending, doc) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (user.id, user.email_key, user.version, int(user.wallet_pending),
                                                   int(user.revoke_pending), _doc_json(user)))
    except sqlite3.IntegrityError:
        raise EmailTaken(user.email) from None


def _select_one(conn: sqlite3.Connection, column: str, value: str) -> UserRecord | None:
    assert column in ("id", "email_key")
    row = conn.execute(f"{_SELECT} WHERE {column} = ?", (value,)).fetchone()
    return None if row is None else _row_to_user(row)


def _update(conn: sqlite3.Connection, user: UserRecord) -> bool:
    new = msgspec.structs.replace(user, version=user.version + 1)
    try:
        cur = conn.execute("UPDATE users SET email_key = ?, version = ?, doc = ? WHERE id = ? AND version = ?",
                           (new.email_key, new.version, _doc_json(new), user.id, user.version))
    except sqlite3.IntegrityError:
        raise EmailTaken(user.email) from None
    return cur.rowcount == 1


def _close(conn: sqlite3.Connection, user_id: str, once: Recorded | None) -> int | None:
    doc, params = "json_set(doc, '$.closed', json('true'))", [user_id]
    if once is not None:   # the command's answer, in the same statement as its effect
        doc = (f"json_set({doc}, '$.inbox', json(json_insert(coalesce(json_extract(doc, '$.inbox'), '[]'), "
               "'$[#]', json(?))))")
        params.insert(0, msgspec.json.encode(once).decode())
    row = conn.execute(f"UPDATE users SET doc = {doc}, version = version + 1, "
                       "revoke_pending = 1 WHERE id = ? RETURNING version", params).fetchone()
    return None if row is None else row[0]


# flag names are checked against OUTBOX_FLAGS by DriverStore before they reach the SQL
def _pending(conn: sqlite3.Connection, flag: str, limit: int) -> list[UserRecord]:
    rows = conn.execute(f"{_SELECT} WHERE {flag} = 1 LIMIT ?", (limit,)).fetchall()
    return [_row_to_user(row) for row in rows]


def _clear_pending(conn: sqlite3.Connection, flag: str, user_id: str) -> None:
    conn.execute(f"UPDATE users SET {flag} = 0 WHERE id = ?", (user_id,))


SqliteUserStore._ops = DriverOps(insert=_insert, find_by=_select_one, update=_update, close=_close,
                                 pending=_pending, clear_pending=_clear_pending)
