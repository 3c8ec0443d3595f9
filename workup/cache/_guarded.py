"""Redis as an optional helper: every operation bounded in time, a circuit breaker in front.

:class:`GuardedCache` wraps a :class:`~workup.cache.Cache` (``open_cache`` wraps every
:class:`~workup.cache.RedisCache` in one; the in-process cache of ``workup up`` needs none). An
operation that does not answer within ``timeout`` is abandoned and raised as
:class:`~workup.cache.CacheUnavailable`, which every caller already treats as a miss (reads go to
the stores) or a skipped write. The first failure opens the breaker (``_breaker.py``): for
``retry_after`` seconds every operation fails at once, without touching the network, then one
probe is let through and its answer closes or reopens it. So no request waits on a dead or
paused cache for longer than ``timeout`` per operation, and at most one operation per
``retry_after`` does once the breaker has opened.

Skipped writes are safe except one: an invalidation (``delete``) that did not land would let the
entry read before the write be served again once the cache is back. Those are remembered (the
newest version per key, at most :data:`MAX_PENDING` keys) and replayed by a background task every
``retry_after``, and at once when the cache answers a probe again, until they land: an entry
read before a write may be served again for that short while after the cache is back (for the
rest of its TTL only if the writer's process stopped in between). Replaying is harmless: a
tombstone at an older version than what is stored changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from typing import Awaitable, Callable, Sequence, TypeVar

import trio

from ._breaker import Breaker, admit, failed, succeeded
from ._protocol import Cache, CacheLife
from ._redis import CacheUnavailable

__all__ = ["GuardedCache", "MAX_PENDING"]

T = TypeVar("T")
log = logging.getLogger("workup.cache")

MAX_PENDING = 10_000   # invalidations kept for replay; past it the oldest is dropped (it lives out its TTL)


class GuardedCache:
    def __init__(self, inner: Cache, *, timeout: float, retry_after: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.timeout = timeout
        self.retry_after = retry_after
        self._clock = clock
        self._state = Breaker()
        self._pending: OrderedDict[str, int] = OrderedDict()   # key -> newest version to invalidate
        self._replaying: object = None                          # the trio run whose replay task runs
        self._recovered: trio.Event | None = None               # wakes that task when a probe succeeds

    @property
    def state(self) -> Breaker:
        return self._state

    async def _guarded(self, op: Callable[[], Awaitable[T]]) -> T:
        admitted, self._state = admit(self._state, self._clock(), self.retry_after)
        if not admitted:
            raise CacheUnavailable(f"cache bypassed: it failed less than {self.retry_after}s ago")
        try:
            with trio.fail_after(self.timeout):
                result = await op()
        except (CacheUnavailable, trio.TooSlowError) as exc:
            self._failed(exc)
            if isinstance(exc, CacheUnavailable):
                raise
            raise CacheUnavailable(f"cache did not answer within {self.timeout}s") from None
        if self._state.mode == "half_open":
            log.warning("cache answers again: using it")
            if self._recovered is not None:
                self._recovered.set()
        self._state = succeeded(self._state)
        if self._pending:
            self._replay_soon()
        return result

    def _failed(self, exc: BaseException) -> None:
        before = self._state.mode
        self._state = failed(self._state, self._clock())
        if self._state.mode == "open" and before != "open":
            log.warning("cache bypassed for %ss: %s", self.retry_after, str(exc) or "no answer in time")

    async def get(self, key: str) -> bytes | None:
        return await self._guarded(lambda: self.inner.get(key))

    async def set(self, key: str, value: bytes, *, version: int, ttl: float) -> bool:
        return await self._guarded(lambda: self.inner.set(key, value, version=version, ttl=ttl))

    async def delete(self, key: str, *, version: int) -> None:
        await self.delete_many([(key, version)])

    async def delete_many(self, entries: Sequence[tuple[str, int]]) -> None:
        try:
            await self._guarded(lambda: self.inner.delete_many(entries))
        except CacheUnavailable:
            for key, version in entries:
                self._remember(key, version)
            raise

    async def set_flag(self, key: str, value: bytes = b"1") -> None:
        await self._guarded(lambda: self.inner.set_flag(key, value))

    async def get_flag(self, key: str) -> bytes | None:
        return await self._guarded(lambda: self.inner.get_flag(key))

    async def count(self, key: str, *, by: int, ttl: float) -> tuple[int, float]:
        return await self._guarded(lambda: self.inner.count(key, by=by, ttl=ttl))

    async def life(self) -> CacheLife:
        return await self._guarded(self.inner.life)

    async def aclose(self) -> None:
        await self.inner.aclose()

    # --- invalidations that did not land ---------------------------------------------------------

    @property
    def pending(self) -> dict[str, int]:
        return dict(self._pending)

    def _remember(self, key: str, version: int) -> None:
        if self._pending.get(key, -1) < version:
            self._pending[key] = version
            self._pending.move_to_end(key)
        while len(self._pending) > MAX_PENDING:
            dropped, _ = self._pending.popitem(last=False)
            log.error("cache invalidation of %s dropped (too many pending); the entry lives out its TTL", dropped)
        self._replay_soon()

    def _replay_soon(self) -> None:
        run = trio.lowlevel.current_trio_token()
        if self._replaying is not run:   # one replay task per trio run (a process-wide cache outlives test runs)
            self._replaying = run
            trio.lowlevel.spawn_system_task(self._replay, run)

    async def _replay(self, run: object) -> None:
        try:
            while self._pending:
                # at once when another operation's probe found the cache back, else as a probe itself
                recovered = self._recovered = trio.Event()
                with trio.move_on_after(self.retry_after):
                    await recovered.wait()
                for key, version in list(self._pending.items()):
                    try:
                        await self._guarded(lambda: self.inner.delete(key, version=version))
                    except CacheUnavailable:
                        break   # still away: wait another retry_after
                    if self._pending.get(key) == version:   # not superseded meanwhile
                        del self._pending[key]
        except Exception:   # a system task must not raise
            log.exception("replaying cache invalidations failed")
        finally:
            if self._replaying is run:
                self._replaying = None
