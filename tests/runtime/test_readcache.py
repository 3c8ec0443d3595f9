"""workup.runtime.readcache over the in-process cache: fills at a version, invalidations that
keep older fills out, the background fill's backlog bound, and outages that only cost a read."""

from __future__ import annotations

import msgspec
import trio

from workup.cache import CacheUnavailable, MemoryCache
from workup.runtime import readcache


class Down:
    """A cache whose every call fails as Redis does when it is unreachable."""

    async def get(self, key):
        raise CacheUnavailable("down (test)")

    async def set(self, key, value, *, version, ttl):
        raise CacheUnavailable("down (test)")

    async def delete(self, key, *, version):
        raise CacheUnavailable("down (test)")

    async def delete_many(self, entries):
        raise CacheUnavailable("down (test)")


class Slow(MemoryCache):
    """Fills wait until ``release`` is set."""

    def __init__(self):
        super().__init__()
        self.release = trio.Event()

    async def set(self, key, value, *, version, ttl):
        await self.release.wait()
        return await super().set(key, value, version=version, ttl=ttl)


async def test_fill_then_lookup_and_invalidate_keeps_older_fills_out():
    cache = MemoryCache()
    assert await readcache.lookup(cache, "k") is None
    body = {"a": 1}
    assert await readcache.fill(cache, "k", 5, body) is body
    assert msgspec.json.decode(await readcache.lookup(cache, "k")) == body
    await readcache.invalidate(cache, ["k"], 6)
    assert await readcache.lookup(cache, "k") is None
    await readcache.fill(cache, "k", 5, {"a": 0})      # read before the write: must not land
    assert await readcache.lookup(cache, "k") is None
    await readcache.fill(cache, "k", 6, {"a": 2})
    assert msgspec.json.decode(await readcache.lookup(cache, "k")) == {"a": 2}


async def test_invalidate_drops_every_key_and_none_is_fine():
    cache = MemoryCache()
    for key in ("a", "b", "c"):
        await readcache.fill(cache, key, 1, key)
    await readcache.invalidate(cache, ["a", "b", "c"], 2)
    assert [await readcache.lookup(cache, k) for k in ("a", "b", "c")] == [None, None, None]
    await readcache.invalidate(cache, [], 3)


async def test_fill_soon_lands_in_the_background():
    cache = MemoryCache()
    assert readcache.fill_soon(cache, "k", 1, [1, 2]) == [1, 2]
    with trio.fail_after(2):
        while await cache.get("k") is None:
            await trio.sleep(0.001)
    assert await cache.get("k") == b"[1,2]"


async def test_fill_soon_skips_fills_beyond_the_backlog(monkeypatch):
    monkeypatch.setattr(readcache, "MAX_PENDING_FILLS", 2)
    cache = Slow()
    for key in ("a", "b", "c"):
        readcache.fill_soon(cache, key, 1, key)
    cache.release.set()
    with trio.fail_after(2):
        while await MemoryCache.get(cache, "b") is None:
            await trio.sleep(0.001)
    assert await cache.get("a") == b'"a"' and await cache.get("c") is None   # the third was skipped
    readcache.fill_soon(cache, "c", 1, "c")                                    # the backlog drained
    with trio.fail_after(2):
        while await cache.get("c") is None:
            await trio.sleep(0.001)


async def test_each_trio_run_counts_its_own_fills(monkeypatch):
    monkeypatch.setattr(readcache, "MAX_PENDING_FILLS", 1)
    stuck = Slow()
    readcache.fill_soon(stuck, "a", 1, "a")   # this run's backlog is full now

    async def fill_in_another_run():
        cache = MemoryCache()
        readcache.fill_soon(cache, "b", 1, "b")
        with trio.fail_after(2):
            while await cache.get("b") is None:
                await trio.sleep(0.001)

    # a process-wide counter would skip this fill: another run (thread) has one pending
    await trio.to_thread.run_sync(trio.run, fill_in_another_run)
    stuck.release.set()


async def test_an_outage_costs_only_a_store_read():
    down = Down()
    assert await readcache.lookup(down, "k") is None
    assert await readcache.fill(down, "k", 1, "body") == "body"
    assert readcache.fill_soon(down, "k", 1, "body") == "body"
    await readcache.invalidate(down, ["k", "l"], 2)
    await trio.sleep(0.01)   # the background fill failed quietly
