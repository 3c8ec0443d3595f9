"""The cache port shared by the gateway (reads) and the services (fills and invalidations)."""

from __future__ import annotations

from typing import Protocol, Sequence

import msgspec

__all__ = ["Cache", "CacheLife"]


class CacheLife(msgspec.Struct, frozen=True):
    """One uninterrupted run of the cache: everything written since ``started_at`` is kept (but
    for TTLs and, for entries, eviction); a restart begins a new life with a new ``id``."""
    id: str
    started_at: float   # wall-clock seconds (time.time()); Redis's errs late, never early


class Cache(Protocol):
    async def get(self, key: str) -> bytes | None:
        """The cached value, or ``None`` (missing, expired or invalidated)."""
        ...

    async def set(self, key: str, value: bytes, *, version: int, ttl: float) -> bool:
        """Store ``value`` read at ``version`` for ``ttl`` seconds, unless a newer version (or a
        newer invalidation) is stored. Returns whether it was stored."""
        ...

    async def delete(self, key: str, *, version: int) -> None:
        """Invalidate after committing ``version``: a tombstone keeps older fills out for
        :data:`~workup.cache.TOMBSTONE_TTL` seconds."""
        ...

    async def delete_many(self, entries: Sequence[tuple[str, int]]) -> None:
        """:meth:`delete` of each ``(key, version)``, in one round trip where the cache is remote."""
        ...

    async def set_flag(self, key: str, value: bytes = b"1") -> None:
        """A durable marker with no TTL (never evicted by the LRU), e.g. closed accounts."""
        ...

    async def get_flag(self, key: str) -> bytes | None: ...

    async def count(self, key: str, *, by: int, ttl: float) -> tuple[int, float]:
        """Add ``by`` to the counter under ``key`` (the gateway's abuse limits); the first count
        starts its ``ttl``-second window. Returns the count and the seconds the window has left; a
        negative ``by`` on a counter that is gone changes nothing (``(0, 0.0)``)."""
        ...

    async def life(self) -> CacheLife:
        """The cache's current life: a flag missing from a life that began after it was due to
        be written may have been lost in a restart (``workup/gateway/_revocations.py``)."""
        ...

    async def aclose(self) -> None: ...
