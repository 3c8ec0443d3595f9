"""Versioned cache-aside for the jobs and contracts services (``workup.cache``).

A read fills its entry (in the background) at the version it read (the entity's
``updated_ms``); a committed write
invalidates at its new version before the reply is sent, so an older in-flight fill cannot land
and no read after the write's reply sees the old value. A cache outage only costs a store read.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncContextManager, AsyncIterator, Callable, Generic, Sequence, TypeVar

import trio

from ..cache import Cache, CacheUnavailable, open_cache
from ..transport.envelope import encode_json
from ..settings import Settings
from ..storage import Db, Table, opened_store

__all__ = ["TTL", "lookup", "fill", "fill_soon", "invalidate", "StoreDeps", "deps_opener"]

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
    await _fill(cache, key, version, encode_json(body))
    return body


MAX_PENDING_FILLS = 256
_pending = 0


def fill_soon(cache: Cache, key: str, version: int, body: Any) -> Any:
    """:func:`fill` in the background (the reply does not wait for the cache); returns ``body``.
    Safe to land late: an invalidation at a newer version keeps it out. Under a backlog of
    :data:`MAX_PENDING_FILLS` a fill is skipped (the next read fills)."""
    global _pending
    if _pending < MAX_PENDING_FILLS:
        _pending += 1
        trio.lowlevel.spawn_system_task(_fill_later, cache, key, version, encode_json(body))
    return body


async def _fill_later(cache: Cache, key: str, version: int, data: bytes) -> None:
    global _pending
    try:
        await _fill(cache, key, version, data)
    except Exception:   # a system task must not raise
        log.exception("cache fill of %s failed", key)
    finally:
        _pending -= 1


async def _fill(cache: Cache, key: str, version: int, data: bytes) -> None:
    try:
        await cache.set(key, data, version=version, ttl=TTL)
    except CacheUnavailable as exc:
        log.warning("cache fill of %s skipped: %s", key, exc)


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
    """The ``open_deps`` of a :class:`~workup.runtime.Service` with a wide-row store."""
    @asynccontextmanager
    async def open_deps(settings: Settings) -> AsyncIterator[StoreDeps[S]]:
        async with opened_store(settings, service, tables, factory) as store:
            yield StoreDeps(store, open_cache(settings))
    return open_deps
