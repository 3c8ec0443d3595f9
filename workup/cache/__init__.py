"""Read-result cache: versioned cache-aside in Redis, or an in-process LRU (embedded default).

The gateway serves cached reply bodies (``routing.cached_forward``); the owning service fills the
cache after a read and invalidates it after a committed write (see ``docs/gateway.md``). Redis is
optional at run time: :func:`open_cache` bounds each of its operations and bypasses it while it
fails (``_guarded.py``).
"""

from __future__ import annotations

from ..settings import Settings
from ._guarded import GuardedCache
from ._memory import MemoryCache
from ._policy import TOMBSTONE_TTL, accepts, cache_key, closed_account_key, pack, unpack
from ._protocol import Cache, CacheLife
from ._redis import CacheUnavailable, RedisCache

__all__ = ["Cache", "CacheLife", "MemoryCache", "RedisCache", "GuardedCache", "CacheUnavailable", "open_cache",
           "cache_key", "closed_account_key", "TOMBSTONE_TTL", "accepts", "pack", "unpack"]

_shared: dict[str | None, Cache] = {}


def open_cache(settings: Settings) -> Cache:
    """The process-wide cache for ``settings.redis_url``: Redis behind a :class:`GuardedCache`
    (``cache_timeout`` per operation, ``cache_retry`` seconds bypassed after a failure), or a
    shared :class:`MemoryCache` when it is ``None``, so the embedded services and the gateway of
    ``workup up`` see the same entries (it never waits on I/O: no guard)."""
    url = settings.redis_url
    cache = _shared.get(url)
    if cache is None:
        cache = MemoryCache() if url is None else GuardedCache(
            RedisCache(url), timeout=settings.cache_timeout, retry_after=settings.cache_retry)
        _shared[url] = cache
    return cache
