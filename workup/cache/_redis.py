"""Redis cache through redis-py's sync client, called from a bounded pool of trio threads.

Entries are single strings ``b"<version>:<value>"`` (tombstones ``b"<version>!"``, see
:mod:`._policy`), so a read is one ``GET``; the compare-and-set of a fill or invalidation is a
Lua script (atomic on the server). Versions are compared as decimal strings (length, then bytes)
so they may exceed Lua's 2**53 exact-integer range.
"""

from __future__ import annotations

import math
from typing import Any

import redis
import trio

from ._policy import TOMBSTONE_TTL, check_version, pack, unpack

__all__ = ["RedisCache", "CacheUnavailable"]


class CacheUnavailable(Exception):
    """Redis could not be reached."""


_PUT = """
local cur = redis.call('GET', KEYS[1])
if cur then
  local cv = string.match(cur, '^(%d+)[:!]')
  local nv = ARGV[1]
  if cv and (#cv > #nv or (#cv == #nv and cv > nv)) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class RedisCache:
    def __init__(self, url: str, *, max_connections: int = 32) -> None:
        self._pool = redis.ConnectionPool.from_url(url, max_connections=max_connections,
                                                   socket_timeout=5, socket_connect_timeout=5)
        self._client = redis.Redis(connection_pool=self._pool)
        self._put_script = self._client.register_script(_PUT)
        self._limiter = trio.CapacityLimiter(max_connections)

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)
        except redis.RedisError as exc:
            raise CacheUnavailable(f"redis: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        raw = await self._run(self._client.get, key)
        if raw is None:
            return None
        try:
            return unpack(raw)[1]
        except ValueError:
            return None  # not ours (or a flag read through the wrong method): a miss

    async def _put(self, key: str, version: int, value: bytes | None, ttl: float) -> bool:
        check_version(version)
        ttl_ms = max(1, math.ceil(ttl * 1000))
        stored = await self._run(lambda: self._put_script(keys=[key], args=[str(version), pack(version, value), ttl_ms]))
        return bool(stored)

    async def set(self, key: str, value: bytes, *, version: int, ttl: float) -> bool:
        return await self._put(key, version, bytes(value), ttl)

    async def delete(self, key: str, *, version: int) -> None:
        await self._put(key, version, None, TOMBSTONE_TTL)

    async def set_flag(self, key: str, value: bytes = b"1") -> None:
        await self._run(self._client.set, key, value)

    async def get_flag(self, key: str) -> bytes | None:
        return await self._run(self._client.get, key)

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self._pool.disconnect)
