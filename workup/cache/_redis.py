"""Redis cache. ``redis://`` URLs are spoken directly on trio sockets (:mod:`._resp`, no thread
hop); ``rediss://`` and ``unix://`` go through redis-py's sync client in a bounded pool of trio
threads.

Entries are single strings ``b"<version>:<value>"`` (tombstones ``b"<version>!"``, see
:mod:`._policy`), so a read is one ``GET``; the compare-and-set of a fill or invalidation is a
Lua script (atomic on the server). Versions are compared as decimal strings (length, then bytes)
so they may exceed Lua's 2**53 exact-integer range. ``INFO server`` tells the cache's life
(``run_id``, uptime).
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any, Sequence

import trio

from ._policy import TOMBSTONE_TTL, check_version, pack, unpack
from ._protocol import CacheLife
from ._resp import BROKEN, RespError, RespPool, RespProtocolError

__all__ = ["RedisCache", "CacheUnavailable"]


class CacheUnavailable(Exception):
    """Redis could not be reached (or answered with an error)."""


# one or more keys (ARGV: version, packed value, TTL ms for each key in turn); returns how many
# were stored: a key already holding a newer version (value or tombstone) is left alone
PUT_SCRIPT = """
local stored = 0
for i, key in ipairs(KEYS) do
  local nv = ARGV[3 * i - 2]
  local cur = redis.call('GET', key)
  local cv = cur and string.match(cur, '^(%d+)[:!]')
  if not (cv and (#cv > #nv or (#cv == #nv and cv > nv))) then
    redis.call('SET', key, ARGV[3 * i - 1], 'PX', ARGV[3 * i])
    stored = stored + 1
  end
end
return stored
"""
_PUT_SHA = hashlib.sha1(PUT_SCRIPT.encode()).hexdigest()

# a counter and its window in one atomic step: the first count sets the expiry
COUNT_SCRIPT = """
local by = tonumber(ARGV[1])
if by < 0 and redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local n = redis.call('INCRBY', KEYS[1], by)
local t = redis.call('PTTL', KEYS[1])
if t < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); t = tonumber(ARGV[2]) end
return {n, t}
"""
_COUNT_SHA = hashlib.sha1(COUNT_SCRIPT.encode()).hexdigest()


class _Resp:
    def __init__(self, url: str, max_connections: int) -> None:
        self.pool = RespPool(url, max_connections=max_connections)

    async def run(self, *args: Any) -> Any:
        try:
            reply = await self.pool.command(*args)
        except (*BROKEN, trio.TooSlowError, RespProtocolError) as exc:
            raise CacheUnavailable(f"redis: {exc!r}") from exc
        if isinstance(reply, RespError):
            raise CacheUnavailable(f"redis: {reply}")
        return reply

    async def get(self, key: str) -> bytes | None:
        reply: bytes | None = await self.run("GET", key)
        return reply

    async def set(self, key: str, value: bytes) -> None:
        await self.run("SET", key, value)

    async def _eval(self, script: str, sha: str, keys: Sequence[str], *args: Any) -> Any:
        try:
            return await self.run("EVALSHA", sha, len(keys), *keys, *args)
        except CacheUnavailable as exc:
            if "NOSCRIPT" not in str(exc):
                raise
        return await self.run("EVAL", script, len(keys), *keys, *args)

    async def put(self, key: str, version: str, packed: bytes, ttl_ms: int) -> bool:
        return bool(await self._eval(PUT_SCRIPT, _PUT_SHA, (key,), version, packed, ttl_ms))

    async def put_many(self, keys: Sequence[str], args: Sequence[Any]) -> None:
        await self._eval(PUT_SCRIPT, _PUT_SHA, keys, *args)

    async def count(self, key: str, by: int, ttl_ms: int) -> list[int]:
        return list(await self._eval(COUNT_SCRIPT, _COUNT_SHA, (key,), by, ttl_ms))

    async def server_info(self) -> dict[str, str]:
        raw = await self.run("INFO", "server")
        return dict(line.split(":", 1) for line in raw.decode().splitlines() if ":" in line)

    async def aclose(self) -> None:
        await self.pool.aclose()


class _RedisPy:
    def __init__(self, url: str, max_connections: int) -> None:
        import redis
        self._errors = redis.RedisError
        self._pool = redis.ConnectionPool.from_url(url, max_connections=max_connections,
                                                   socket_timeout=5, socket_connect_timeout=5)
        self._client = redis.Redis(connection_pool=self._pool)
        self._script = self._client.register_script(PUT_SCRIPT)
        self._count = self._client.register_script(COUNT_SCRIPT)
        self._limiter = trio.CapacityLimiter(max_connections)

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            # abandoned on cancel, so a bypass bound (``_guarded.py``) is not held up by the thread
            return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter, abandon_on_cancel=True)
        except self._errors as exc:
            raise CacheUnavailable(f"redis: {exc}") from exc

    async def get(self, key: str) -> bytes | None:
        reply: bytes | None = await self._run(self._client.get, key)
        return reply

    async def set(self, key: str, value: bytes) -> None:
        await self._run(self._client.set, key, value)

    async def put(self, key: str, version: str, packed: bytes, ttl_ms: int) -> bool:
        return bool(await self._run(lambda: self._script(keys=[key], args=[version, packed, ttl_ms])))

    async def put_many(self, keys: Sequence[str], args: Sequence[Any]) -> None:
        await self._run(lambda: self._script(keys=list(keys), args=list(args)))

    async def count(self, key: str, by: int, ttl_ms: int) -> list[int]:
        return list(await self._run(lambda: self._count(keys=[key], args=[by, ttl_ms])))

    async def server_info(self) -> dict[str, str]:
        info = await self._run(self._client.info, "server")
        return {str(k): str(v) for k, v in info.items()}

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self._pool.disconnect)


class RedisCache:
    def __init__(self, url: str, *, max_connections: int = 32, driver: str | None = None) -> None:
        """``driver``: ``"resp"`` (direct, ``redis://`` only) or ``"redis-py"``; by URL when None."""
        if driver is None:
            driver = "resp" if url.startswith("redis://") else "redis-py"
        self.driver = driver
        self._backend: _Resp | _RedisPy = (_Resp if driver == "resp" else _RedisPy)(url, max_connections)

    async def get(self, key: str) -> bytes | None:
        raw = await self._backend.get(key)
        if raw is None:
            return None
        try:
            return unpack(raw)[1]
        except ValueError:
            return None  # not ours (or a flag read through the wrong method): a miss

    async def _put(self, key: str, version: int, value: bytes | None, ttl: float) -> bool:
        check_version(version)
        return await self._backend.put(key, str(version), pack(version, value), max(1, math.ceil(ttl * 1000)))

    async def set(self, key: str, value: bytes, *, version: int, ttl: float) -> bool:
        return await self._put(key, version, bytes(value), ttl)

    async def delete(self, key: str, *, version: int) -> None:
        await self.delete_many([(key, version)])

    async def delete_many(self, entries: Sequence[tuple[str, int]]) -> None:
        """Every tombstone in one script call (one round trip)."""
        if not entries:
            return
        ttl_ms = max(1, math.ceil(TOMBSTONE_TTL * 1000))
        args: list[Any] = []
        for _, version in entries:
            check_version(version)
            args += [str(version), pack(version, None), ttl_ms]
        await self._backend.put_many([key for key, _ in entries], args)

    async def set_flag(self, key: str, value: bytes = b"1") -> None:
        await self._backend.set(key, bytes(value))

    async def get_flag(self, key: str) -> bytes | None:
        return await self._backend.get(key)

    async def count(self, key: str, *, by: int, ttl: float) -> tuple[int, float]:
        n, ttl_ms = await self._backend.count(key, by, max(1, math.ceil(ttl * 1000)))
        return int(n), int(ttl_ms) / 1000

    async def life(self) -> CacheLife:
        """``INFO server``'s ``run_id`` (new at every start) and its start, from ``uptime_in_seconds``
        (whole seconds, so ``started_at`` errs late, never early). The user needs ``INFO``."""
        info = await self._backend.server_info()
        try:
            return CacheLife(id=info["run_id"], started_at=time.time() - int(info["uptime_in_seconds"]))
        except (KeyError, ValueError) as exc:
            raise CacheUnavailable(f"redis: INFO server without run_id/uptime ({exc!r})") from None

    async def aclose(self) -> None:
        await self._backend.aclose()
