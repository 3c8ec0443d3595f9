"""Read-result cache: versioned cache-aside in Redis, or an in-process LRU (embedded default).

The gateway serves cached reply bodies (``routing.cached_forward``); the owning service fills the cache
after a read and invalidates it after a committed write (see ``docs/gateway.md``).
"""

from __future__ import annotations

from ..settings import Settings
from ._memory import MemoryCache
from ._policy import TOMBSTONE_TTL, accepts, cache_key, closed_account_key, pack, unpack
from ._protocol import Cache
from ._redis import CacheUnavailable, RedisCache

__all__ = ["Cache", "MemoryCache", "RedisCache", "CacheUnavailable", "open_cache", "cache_key", "closed_account_key",
           "TOMBSTONE_TTL", "accepts", "pack", "unpack"]

_shared: dict[str | None, Cache] = {}


def open_cache(settings: Settings) -> Cache:
    """The process-wide cache for ``settings.redis_url`` (a shared :class:`MemoryCache` when it is
    ``None``, so the embedded services and the gateway of ``workup up`` see the same entries)."""
    url = settings.redis_url
    cache = _shared.get(url)
    if cache is None:
        cache = MemoryCache() if url is None else RedisCache(url)
        _shared[url] = cache
    return cache
