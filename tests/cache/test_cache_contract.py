"""One contract for both cache implementations: the in-process LRU and the real Redis."""

import secrets

import pytest
import redis
import trio

from workup.cache import MemoryCache, RedisCache, TOMBSTONE_TTL
from workup.settings import Settings
from workup.cache import open_cache


@pytest.fixture(params=["memory", "redis-resp", "redis-py"])
async def cache(request):
    if request.param == "memory":
        c = MemoryCache()
    else:
        c = RedisCache(request.getfixturevalue("redis_url"), driver=request.param.removeprefix("redis-"))
        assert c.driver == request.param.removeprefix("redis-")
    yield c
    await c.aclose()


@pytest.fixture
def key():
    return f"workup:test:cache:{secrets.token_hex(8)}"


async def test_miss_then_hit(cache, key):
    assert await cache.get(key) is None
    assert await cache.set(key, b'{"v":1}', version=1, ttl=30) is True
    assert await cache.get(key) == b'{"v":1}'


async def test_older_version_never_replaces_newer(cache, key):
    assert await cache.set(key, b"v5", version=5, ttl=30)
    assert await cache.set(key, b"v4", version=4, ttl=30) is False
    assert await cache.get(key) == b"v5"
    assert await cache.set(key, b"v5-again", version=5, ttl=30) is True
    assert await cache.set(key, b"v6", version=6, ttl=30) is True
    assert await cache.get(key) == b"v6"


async def test_delete_leaves_a_tombstone_against_stale_fills(cache, key):
    # a reader read version 1, then a writer committed version 2 and invalidated
    await cache.set(key, b"v1", version=1, ttl=30)
    await cache.delete(key, version=2)
    assert await cache.get(key) is None
    assert await cache.set(key, b"v1", version=1, ttl=30) is False    # the stale reader's fill
    assert await cache.get(key) is None
    assert await cache.set(key, b"v2", version=2, ttl=30) is True     # a fresh read
    assert await cache.get(key) == b"v2"


async def test_delete_with_older_version_keeps_newer_value(cache, key):
    await cache.set(key, b"v3", version=3, ttl=30)
    await cache.delete(key, version=2)
    assert await cache.get(key) == b"v3"


async def test_delete_many_is_delete_of_each_at_its_own_version(cache, key):
    newer, older, missing = f"{key}:newer", f"{key}:older", f"{key}:missing"
    await cache.set(newer, b"v9", version=9, ttl=30)   # newer than its tombstone: kept
    await cache.set(older, b"v1", version=1, ttl=30)   # read before the write: dropped
    await cache.delete_many([(newer, 5), (older, 2), (missing, 7)])
    assert await cache.get(newer) == b"v9"
    assert await cache.get(older) is None
    assert await cache.set(older, b"v1", version=1, ttl=30) is False     # stale fills stay out
    assert await cache.set(missing, b"v6", version=6, ttl=30) is False
    assert await cache.set(older, b"v2", version=2, ttl=30) is True      # a fresh read fills
    assert await cache.get(older) == b"v2"
    await cache.delete_many([])   # nothing to do, no error


async def test_delete_of_missing_key_still_blocks_stale_fill(cache, key):
    await cache.delete(key, version=7)
    assert await cache.set(key, b"old", version=6, ttl=30) is False
    assert await cache.get(key) is None


async def test_huge_versions_compare_exactly(cache, key):
    big = 2**63 + 12345
    await cache.set(key, b"big", version=big, ttl=30)
    assert await cache.set(key, b"smaller", version=big - 1, ttl=30) is False
    assert await cache.set(key, b"bigger", version=big + 1, ttl=30) is True
    assert await cache.get(key) == b"bigger"


async def test_ttl_expires(cache, key):
    await cache.set(key, b"short", version=1, ttl=0.05)
    await trio.sleep(0.2)
    assert await cache.get(key) is None
    # once expired, an older version may be stored again (nothing newer is known)
    assert await cache.set(key, b"again", version=0, ttl=30) is True


async def test_flags_have_no_ttl_and_are_separate(cache, key):
    assert await cache.get_flag(key) is None
    await cache.set_flag(key)
    assert await cache.get_flag(key) == b"1"
    await cache.set_flag(key + ":x", b"closed")
    assert await cache.get_flag(key + ":x") == b"closed"


async def test_values_are_bytes_exactly(cache, key):
    value = bytes(range(256)) * 4
    await cache.set(key, value, version=1, ttl=30)
    assert await cache.get(key) == value


async def test_bad_version_is_refused(cache, key):
    with pytest.raises(ValueError):
        await cache.set(key, b"x", version=-1, ttl=30)


async def test_concurrent_fills_keep_the_newest(cache, key):
    async with trio.open_nursery() as n:
        for v in range(20):
            n.start_soon(lambda v=v: cache.set(key, b"v%d" % v, version=v, ttl=30))
    assert await cache.get(key) == b"v19"


async def test_redis_tombstone_ttl(redis_url, key):
    c = RedisCache(redis_url)
    await c.delete(key, version=1)
    ttl_ms = redis.Redis.from_url(redis_url).pttl(key)
    assert 0 < ttl_ms <= TOMBSTONE_TTL * 1000
    await c.aclose()


def test_memory_lru_is_bounded_but_flags_are_not():
    c = MemoryCache(max_entries=3)

    async def run():
        for i in range(10):
            await c.set(f"k{i}", b"x", version=1, ttl=30)
            await c.set_flag(f"f{i}")
        assert [await c.get(f"k{i}") for i in range(10)] == [None] * 7 + [b"x"] * 3
        assert all([await c.get_flag(f"f{i}") == b"1" for i in range(10)])
    trio.run(run)


def test_open_cache_is_process_wide_in_memory():
    a = open_cache(Settings())
    b = open_cache(Settings(data_dir="/elsewhere"))
    assert a is b and isinstance(a, MemoryCache)
