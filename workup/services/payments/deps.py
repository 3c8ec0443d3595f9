"""What a payments worker process holds: the store, the read cache, and the outbox relay's bell."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator

import trio

from ...cache import Cache, open_cache
from ...runtime.outbox import Bell
from ...runtime.service import Context, DbPool
from ...settings import Settings
from .postgres import PostgresStore
from .sqlite import SqliteStore
from .store import SqlStore

__all__ = ["PaymentsDeps", "Ctx", "open_payments_deps", "open_store", "DEFAULT_POOL_SIZE"]

DEFAULT_POOL_SIZE = 8     # connections per process (PostgreSQL); `set-max-db-connections` changes it


@dataclass
class PaymentsDeps:
    store: SqlStore
    cache: Cache
    # wakes the outbox relay when rows a handler left to it are due (``relay.py``)
    outbox_bell: Bell = field(default_factory=Bell)

    @property
    def db_pool(self) -> DbPool:
        """The store's connection pool, which ``set-max-db-connections`` sizes."""
        return self.store

    blocking = None   # the store's own thread limiter is sized with its pool


Ctx = Context[PaymentsDeps]


async def open_store(settings: Settings, size: int = DEFAULT_POOL_SIZE) -> SqlStore:
    """PostgreSQL when ``payments_postgres_url`` is set (database created and migrated if needed),
    else SQLite at ``<data_dir>/payments.sqlite3``."""
    url = settings.payments_postgres_url
    if url:
        return await trio.to_thread.run_sync(lambda: PostgresStore.open(url, size))
    path = settings.data_path / "payments.sqlite3"
    return await trio.to_thread.run_sync(lambda: SqliteStore.open(path))


@asynccontextmanager
async def open_payments_deps(settings: Settings) -> AsyncIterator[PaymentsDeps]:
    store = await open_store(settings)
    try:
        # the cache is process-wide (shared with an embedded gateway): not ours to close
        yield PaymentsDeps(store=store, cache=open_cache(settings))
    finally:
        with trio.CancelScope(shield=True):
            await store.close()
