"""GuardedCache over a cache that hangs or fails: bounded operations, the breaker in front, and
invalidations replayed once the cache is back (virtual time: every test takes trio's
autojump clock, which pytest-trio only uses when the test itself asks for it)."""

import pytest
import trio

from workup.cache import CacheUnavailable, GuardedCache, MemoryCache
from workup.cache import _guarded

TIMEOUT, RETRY = 0.2, 1.0


class Sick(MemoryCache):
    """An in-process cache that can hang (a paused Redis) or refuse (a stopped one)."""

    def __init__(self):
        super().__init__()
        self.mode = "ok"
        self.calls = 0

    async def _sick(self):
        self.calls += 1
        if self.mode == "hang":
            await trio.sleep_forever()
        if self.mode == "refuse":
            raise CacheUnavailable("connection refused (test)")

    async def get(self, key):
        await self._sick()
        return await super().get(key)

    async def set(self, key, value, *, version, ttl):
        await self._sick()
        return await super().set(key, value, version=version, ttl=ttl)

    async def delete(self, key, *, version):
        await self._sick()
        await super().delete(key, version=version)

    async def delete_many(self, entries):
        await self._sick()
        await super().delete_many(entries)

    async def get_flag(self, key):
        await self._sick()
        return await super().get_flag(key)


@pytest.fixture
def sick():
    return Sick()


@pytest.fixture
def guarded(sick):
    return GuardedCache(sick, timeout=TIMEOUT, retry_after=RETRY, clock=trio.current_time)


async def timed(op):
    start = trio.current_time()
    try:
        return await op(), trio.current_time() - start
    except CacheUnavailable:
        return "bypassed", trio.current_time() - start


async def test_a_hung_cache_costs_one_bound_then_nothing_until_the_probe(autojump_clock, sick, guarded):
    await guarded.set("k", b"v", version=1, ttl=60)
    assert await timed(lambda: guarded.get("k")) == (b"v", 0)
    sick.mode = "hang"
    assert await timed(lambda: guarded.get("k")) == ("bypassed", pytest.approx(TIMEOUT))
    assert guarded.state.mode == "open"
    calls = sick.calls
    for op in (lambda: guarded.get("k"), lambda: guarded.get_flag("f"), lambda: guarded.set_flag("f"),
               lambda: guarded.set("k", b"w", version=2, ttl=60)):
        assert await timed(op) == ("bypassed", 0)          # no I/O while open
    assert sick.calls == calls
    await trio.sleep(RETRY)
    assert await timed(lambda: guarded.get("k")) == ("bypassed", pytest.approx(TIMEOUT))   # the probe, still hung
    assert sick.calls == calls + 1 and guarded.state.mode == "open"
    sick.mode = "ok"
    assert await timed(lambda: guarded.get("k")) == ("bypassed", 0)                        # cooling down again
    await trio.sleep(RETRY)
    assert await timed(lambda: guarded.get("k")) == (b"v", 0)                              # the probe closes it
    assert guarded.state.mode == "closed"


async def test_while_a_probe_is_in_flight_everything_else_is_bypassed(autojump_clock, sick, guarded):
    sick.mode = "hang"
    assert (await timed(lambda: guarded.get("k")))[0] == "bypassed"
    await trio.sleep(RETRY)
    results = []

    async def one():
        results.append(await timed(lambda: guarded.get("k")))

    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(one)
    assert sorted(results, key=lambda r: r[1]) == [("bypassed", 0)] * 4 + [("bypassed", pytest.approx(TIMEOUT))]


async def test_a_refusing_cache_fails_at_once_and_opens(autojump_clock, sick, guarded):
    sick.mode = "refuse"
    assert await timed(lambda: guarded.get_flag("f")) == ("bypassed", 0)
    assert guarded.state.mode == "open"


async def test_a_cancelled_probe_does_not_wedge_the_breaker(autojump_clock, sick, guarded):
    sick.mode = "hang"
    assert (await timed(lambda: guarded.get("k")))[0] == "bypassed"
    await trio.sleep(RETRY)
    with trio.move_on_after(TIMEOUT / 4):        # the caller gives up before the bound
        await guarded.get("k")
    assert guarded.state.mode == "half_open"
    sick.mode = "ok"
    assert await timed(lambda: guarded.get("k")) == ("bypassed", 0)
    await trio.sleep(RETRY)
    assert await timed(lambda: guarded.get("k")) == (None, 0)
    assert guarded.state.mode == "closed"


async def test_invalidations_that_did_not_land_are_replayed_when_the_cache_is_back(autojump_clock, sick, guarded):
    await guarded.set("k", b"old", version=1, ttl=60)
    sick.mode = "hang"
    with pytest.raises(CacheUnavailable):
        await guarded.delete("k", version=2)          # the writer committed version 2
    with pytest.raises(CacheUnavailable):
        await guarded.delete("k", version=3)          # and 3
    with pytest.raises(CacheUnavailable):
        await guarded.delete("j", version=7)
    assert guarded.pending == {"k": 3, "j": 7}
    await trio.sleep(5 * RETRY)
    assert guarded.pending == {"k": 3, "j": 7}        # still away: kept
    sick.mode = "ok"
    await trio.sleep(RETRY + TIMEOUT)
    assert guarded.pending == {}
    assert await sick.get("k") is None                # the old entry is gone
    assert await guarded.set("k", b"old", version=1, ttl=60) is False   # and cannot come back
    assert await guarded.set("k", b"new", version=3, ttl=60) is True


async def test_a_batch_of_invalidations_that_did_not_land_is_replayed_key_by_key(autojump_clock, sick, guarded):
    await guarded.set("a", b"old", version=1, ttl=60)
    await guarded.set("b", b"old", version=1, ttl=60)
    sick.mode = "refuse"
    with pytest.raises(CacheUnavailable):
        await guarded.delete_many([("a", 2), ("b", 4)])
    assert guarded.pending == {"a": 2, "b": 4}
    sick.mode = "ok"
    await trio.sleep(RETRY + TIMEOUT)
    assert guarded.pending == {}
    assert await guarded.set("a", b"old", version=1, ttl=60) is False
    assert await guarded.set("b", b"v3", version=3, ttl=60) is False
    assert await guarded.set("b", b"v4", version=4, ttl=60) is True


async def test_pending_invalidations_are_bounded(autojump_clock, sick, guarded, monkeypatch):
    monkeypatch.setattr(_guarded, "MAX_PENDING", 3)
    sick.mode = "refuse"
    for i in range(5):
        with pytest.raises(CacheUnavailable):
            await guarded.delete(f"k{i}", version=1)
    assert list(guarded.pending) == ["k2", "k3", "k4"]


def test_open_cache_guards_redis_and_leaves_the_in_process_cache_alone():
    from workup.cache import RedisCache, open_cache
    from workup.settings import Settings

    guarded = open_cache(Settings(redis_url="redis://127.0.0.1:1/0", cache_timeout=0.1, cache_retry=2.0))
    assert isinstance(guarded, GuardedCache) and isinstance(guarded.inner, RedisCache)
    assert (guarded.timeout, guarded.retry_after) == (0.1, 2.0)
    assert type(open_cache(Settings())) is MemoryCache   # embedded: nothing between it and the caller
