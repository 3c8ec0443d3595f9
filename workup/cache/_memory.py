"""In-process cache (embedded default): an LRU of versioned entries plus a dict of flags."""

from __future__ import annotations

import math
import secrets
import time
from collections import OrderedDict
from typing import Callable, Sequence

from ._policy import TOMBSTONE_TTL, accepts, check_version
from ._protocol import CacheLife

__all__ = ["MemoryCache"]


class MemoryCache:
    """Same semantics as :class:`~workup.cache.RedisCache`; bounded by ``max_entries`` (flags are
    not counted and never evicted). Single trio thread: no locking needed."""

    def __init__(self, max_entries: int = 100_000, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[int, bytes | None, float]] = OrderedDict()
        self._flags: dict[str, bytes] = {}
        self._counters: dict[str, tuple[int, float]] = {}   # key -> (count, window end)
        self._max = max_entries
        self._clock = clock
        # it lives and dies with its process: a restarted `workup up` starts an empty one. Its life
        # starts at the whole second, as token `iat`s do: a previous process cannot have closed an
        # account, stopped, and this one have started within the same second
        self._life = CacheLife(id=secrets.token_hex(8), started_at=float(math.floor(time.time())))

    def _stored_version(self, key: str, now: float) -> int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[2] <= now:
            del self._entries[key]
            return None
        return entry[0]

    def _put(self, key: str, version: int, value: bytes | None, ttl: float) -> bool:
        now = self._clock()
        if not accepts(self._stored_version(key, now), check_version(version)):
            return False
        self._entries[key] = (version, value, now + ttl)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return True

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[2] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: bytes, *, version: int, ttl: float) -> bool:
        return self._put(key, version, bytes(value), ttl)

    async def delete(self, key: str, *, version: int) -> None:
        self._put(key, version, None, TOMBSTONE_TTL)

    async def delete_many(self, entries: Sequence[tuple[str, int]]) -> None:
        for key, version in entries:
            self._put(key, version, None, TOMBSTONE_TTL)

    async def set_flag(self, key: str, value: bytes = b"1") -> None:
        self._flags[key] = bytes(value)

    async def get_flag(self, key: str) -> bytes | None:
        return self._flags.get(key)

    async def count(self, key: str, *, by: int, ttl: float) -> tuple[int, float]:
        now = self._clock()
        n, end = self._counters.get(key, (0, now))
        if end <= now:   # no counter, or its window ended
            self._counters.pop(key, None)
            if by < 0:
                return 0, 0.0
            if len(self._counters) >= self._max:
                # bounded like the entries: ended windows go first, else the oldest counter
                ended = [k for k, (_, e) in self._counters.items() if e <= now]
                for old in ended or [next(iter(self._counters))]:
                    del self._counters[old]
            n, end = 0, now + ttl
        self._counters[key] = (n + by, end)
        return n + by, end - now

    async def life(self) -> CacheLife:
        return self._life

    async def aclose(self) -> None:
        pass
