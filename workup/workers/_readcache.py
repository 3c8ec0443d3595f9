"""Versioned cache-aside for the jobs and contracts services (``workup.cache``).

A read fills its entry at the version it read (the entity's ``updated_ms``); a committed write
invalidates at its new version before the reply is sent, so an older in-flight fill cannot land
and no read after the write's reply sees the old value. A cache outage only costs a store read.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncContextManager, AsyncIterator, Callable, Generic, Sequence, TypeVar

from ..cache import Cache, CacheUnavailable, open_cache
from ..envelope import encode_json
from ..settings import Settings
from ._wide import Db, Table, opened_store

__all__ = ["TTL", "lookup", "fill", "invalidate", "StoreDeps", "deps_opener"]

S = TypeVar("S")

log = logging.getLogger("workup.cache")
TTL = 300.0


async def lookup(cache: Cache, key: str) -> bytes | None:
    try:
        return await cache.get(key)
    except CacheUnavailable as exc:
        log.warning("cache read of %s skipped: %s", key, exc)
        return None


async def fill(cache: Cache, key: str, version: int, body: Any) -> Any:
    """Store ``body`` (JSON-encoded) as read at ``version``; returns ``body``."""
    try:
        await cache.set(key, encode_json(body), version=version, ttl=TTL)
    except CacheUnavailable as exc:
        log.warning("cache fill of %s skipped: %s", key, exc)
    return body


async def invalidate(cache: Cache, keys: Sequence[str], version: int) -> None:
    for key in keys:
        try:
            await cache.delete(key, version=version)
        except CacheUnavailable as exc:
            log.error("cache invalidation of %s failed (entry lives at most %ss): %s", key, TTL, exc)


@dataclass
class StoreDeps(Generic[S]):
    """What a jobs or contracts handler uses: its store and the read cache."""
    store: S
    cache: Cache


def deps_opener(service: str, tables: Sequence[Table],
                factory: Callable[[Db], S]) -> Callable[[Settings], AsyncContextManager[StoreDeps[S]]]:
    """The ``open_deps`` of a :class:`~workup.workers.Service` with a wide-row store."""
    @asynccontextmanager
    async def open_deps(settings: Settings) -> AsyncIterator[StoreDeps[S]]:
        async with opened_store(settings, service, tables, factory) as store:
            yield StoreDeps(store, open_cache(settings))
    return open_deps
