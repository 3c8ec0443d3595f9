"""The closed-account check: flag in the cache, memo in front."""

from workup.cache import MemoryCache, closed_account_key
from workup.gateway._revocations import Revocations


class CountingCache(MemoryCache):
    def __init__(self):
        super().__init__()
        self.asked = 0

    async def get_flag(self, key):
        self.asked += 1
        return await super().get_flag(key)


async def test_open_answers_are_memoized_for_ttl_closed_ones_for_good():
    now = [0.0]
    cache = CountingCache()
    rev = Revocations(cache, ttl=1.0, clock=lambda: now[0])
    assert await rev.is_closed("u") is False
    assert await rev.is_closed("u") is False
    assert cache.asked == 1
    await cache.set_flag(closed_account_key("u"))
    assert await rev.is_closed("u") is False          # still within the memo
    now[0] += 1.01
    assert await rev.is_closed("u") is True
    asked = cache.asked
    now[0] += 100
    assert await rev.is_closed("u") is True and cache.asked == asked


async def test_mark_closed_is_immediate():
    rev = Revocations(MemoryCache(), ttl=60)
    assert await rev.is_closed("v") is False
    rev.mark_closed("v")
    assert await rev.is_closed("v") is True


async def test_memo_is_bounded():
    rev = Revocations(MemoryCache(), size=10)
    for i in range(100):
        await rev.is_closed(f"user{i}")
    assert len(rev._open_until) == 10
