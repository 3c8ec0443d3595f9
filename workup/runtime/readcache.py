"""Versioned cache-aside for every service's reads (``workup.cache``).

A read fills its entry at the version it read (the entity's version counter or ``updated_ms``):
now (:func:`fill`, when the gateway serves the entry and the next request should find it) or in
the background (:func:`fill_soon`, when only the service reads it). A committed write invalidates
at its new version before the reply is sent (:func:`invalidate`), so an older in-flight fill
cannot land and no read after the write's reply sees the old value. A cache outage only costs a
store read. Keys come from one key function per entity in ``workup.messages.<service>``.
"""

from __future__ import annotations

import logging
from typing import Sequence, TypeVar

import trio
from trio.lowlevel import RunVar

from ..cache import Cache, CacheUnavailable
from ..transport.envelope import encode_json

__all__ = ["TTL", "MAX_PENDING_FILLS", "lookup", "fill", "fill_soon", "invalidate", "invalidate_each"]

B = TypeVar("B")

log = logging.getLogger("workup.cache")
TTL = 300.0
MAX_PENDING_FILLS = 256


class _Backlog:
    """How many :func:`fill_soon` fills are still in flight."""
    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = 0


# The fills are system tasks of the trio run, so their count belongs to the run: one per
# process in production, a fresh one for each test's run.
_backlog: RunVar[_Backlog] = RunVar("workup_readcache_backlog")


def _current_backlog() -> _Backlog:
    try:
        return _backlog.get()
    except LookupError:
        backlog = _Backlog()
        _backlog.set(backlog)
        return backlog


async def lookup(cache: Cache, key: str) -> bytes | None:
    try:
        return await cache.get(key)
    except CacheUnavailable as exc:
        log.warning("cache read of %s skipped: %s", key, exc)
        return None


async def fill(cache: Cache, key: str, version: int, body: B) -> B:
    """Store ``body`` (JSON-encoded) as read at ``version``; returns ``body``."""
    await _fill(cache, key, version, encode_json(body))
    return body


def fill_soon(cache: Cache, key: str, version: int, body: B) -> B:
    """:func:`fill` in the background (the reply does not wait for the cache); returns ``body``.
    Safe to land late: an invalidation at a newer version keeps it out. Under a backlog of
    :data:`MAX_PENDING_FILLS` a fill is skipped (the next read fills)."""
    backlog = _current_backlog()
    if backlog.pending < MAX_PENDING_FILLS:
        backlog.pending += 1
        trio.lowlevel.spawn_system_task(_fill_later, backlog, cache, key, version, encode_json(body))
    return body


async def _fill_later(backlog: _Backlog, cache: Cache, key: str, version: int, data: bytes) -> None:
    try:
        await _fill(cache, key, version, data)
    except Exception:   # a system task must not raise
        log.exception("cache fill of %s failed", key)
    finally:
        backlog.pending -= 1


async def _fill(cache: Cache, key: str, version: int, data: bytes) -> None:
    try:
        await cache.set(key, data, version=version, ttl=TTL)
    except CacheUnavailable as exc:
        log.warning("cache fill of %s skipped: %s", key, exc)


async def invalidate(cache: Cache, keys: Sequence[str], version: int) -> None:
    """After committing ``version``: drop every entry read from it (one cache round trip however
    many keys). An outage here is logged; the entries then live at most :data:`TTL` seconds."""
    await invalidate_each(cache, [(key, version) for key in keys])


async def invalidate_each(cache: Cache, entries: Sequence[tuple[str, int]]) -> None:
    """:func:`invalidate` of keys committed at versions of their own, in one round trip."""
    if not entries:
        return
    try:
        await cache.delete_many(entries)
    except CacheUnavailable as exc:
        keys = ", ".join(key for key, _ in entries)
        log.error("cache invalidation of %s failed (entries live at most %ss): %s", keys, TTL, exc)
