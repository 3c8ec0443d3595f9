"""The closed-account check: flag in the cache, memo in front, the users store asked when the
cache cannot vouch for a missing flag (down, or started after the token was issued)."""

import time

import pytest

from workup.cache import CacheLife, CacheUnavailable, MemoryCache, closed_account_key
from workup.gateway._revocations import AccountCheckFailed, Revocations, trusts_absent_flag
from workup.gateway._tokens import Claims


class CountingCache(MemoryCache):
    def __init__(self):
        super().__init__()
        self.asked = 0
        self.down = False

    async def get_flag(self, key):
        self.asked += 1
        if self.down:
            raise CacheUnavailable("down (test)")
        return await super().get_flag(key)

    def restart(self, at: float):
        """What a restarted Redis looks like: empty, a new life that started at ``at``."""
        self._flags.clear()
        self._life = CacheLife(id=f"life-{at}", started_at=at)


class Accounts:
    """The users store as the gateway sees it: which accounts are closed, and how often asked."""

    def __init__(self, *closed):
        self.closed = set(closed)
        self.asked = 0
        self.failing = False

    async def is_open(self, caller):
        self.asked += 1
        if self.failing:
            raise AccountCheckFailed("users down (test)")
        return caller.user_id not in self.closed


def claims(user: str, iat: float | None = None) -> Claims:
    iat = int(time.time()) if iat is None else iat
    return Claims(iss="workup", aud="workup-api", sub=user, role="CLIENT", iat=iat, exp=iat + 3600)


async def test_open_answers_are_memoized_for_ttl_closed_ones_for_good():
    now = [0.0]
    cache = CountingCache()
    rev = Revocations(cache, Accounts(), ttl=1.0, clock=lambda: now[0])
    assert await rev.is_closed(claims("u")) is False
    assert await rev.is_closed(claims("u")) is False
    assert cache.asked == 1
    await cache.set_flag(closed_account_key("u"))
    assert await rev.is_closed(claims("u")) is False          # still within the memo
    now[0] += 1.01
    assert await rev.is_closed(claims("u")) is True
    asked = cache.asked
    now[0] += 100
    assert await rev.is_closed(claims("u")) is True and cache.asked == asked


async def test_mark_closed_is_immediate():
    rev = Revocations(MemoryCache(), Accounts(), ttl=60)
    assert await rev.is_closed(claims("v")) is False
    rev.mark_closed("v")
    assert await rev.is_closed(claims("v")) is True


async def test_memo_is_bounded():
    rev = Revocations(MemoryCache(), Accounts(), size=10)
    for i in range(100):
        await rev.is_closed(claims(f"user{i}"))
    assert len(rev._open_until) == 10


@pytest.mark.parametrize("iat, started_at, trusted", [
    (100, 99.0, True),      # issued after the cache started
    (100, 100.0, True),
    (100, 100.1, False),    # the same second: iat is rounded down, the token may be older
    (100, 101.0, False),    # the cache started after: a flag may have been lost
    (100, 5000.0, False),
])
def test_an_absent_flag_is_believed_only_for_a_token_of_the_caches_life(iat, started_at, trusted):
    assert trusts_absent_flag(iat, CacheLife(id="x", started_at=started_at)) is trusted


async def test_after_a_restart_an_older_token_is_checked_with_users_once_per_life():
    now = [0.0]
    cache, accounts = CountingCache(), Accounts("gone")
    rev = Revocations(cache, accounts, ttl=1.0, clock=lambda: now[0])
    old = int(time.time()) - 60
    cache.restart(at=old - 10)        # the cache has lived since before the token
    assert await rev.is_closed(claims("gone", old)) is False and accounts.asked == 0   # the absent flag is believed
    cache.restart(at=old + 30)        # the closure flag of "gone" would have been lost here
    now[0] += 1.01                    # the life is re-read after ttl
    assert await rev.is_closed(claims("gone", old)) is True and accounts.asked == 1
    assert await rev.is_closed(claims("kept", old)) is False and accounts.asked == 2
    now[0] += 5                       # the "open" memo expired; users said "open" in this life
    assert await rev.is_closed(claims("kept", old)) is False and accounts.asked == 2
    assert await rev.is_closed(claims("fresh")) is False and accounts.asked == 2      # issued in this life
    cache.restart(at=time.time() + 1)
    now[0] += 5
    assert await rev.is_closed(claims("kept", old)) is False and accounts.asked == 3  # a new life: asked again


async def test_a_flag_written_in_the_new_life_is_enough():
    now = [0.0]
    cache, accounts = CountingCache(), Accounts()
    rev = Revocations(cache, accounts, ttl=1.0, clock=lambda: now[0])
    cache.restart(at=time.time())
    await cache.set_flag(closed_account_key("u"))
    assert await rev.is_closed(claims("u", int(time.time()) - 60)) is True and accounts.asked == 0


async def test_without_the_cache_users_is_asked_every_ttl():
    now = [0.0]
    cache, accounts = CountingCache(), Accounts("gone")
    cache.down = True
    rev = Revocations(cache, accounts, ttl=1.0, clock=lambda: now[0])
    assert await rev.is_closed(claims("gone")) is True
    assert await rev.is_closed(claims("u")) is False and accounts.asked == 2
    assert await rev.is_closed(claims("u")) is False and accounts.asked == 2
    now[0] += 1.01
    assert await rev.is_closed(claims("u")) is False and accounts.asked == 3
    accounts.closed.add("u")
    now[0] += 1.01
    assert await rev.is_closed(claims("u")) is True


async def test_neither_cache_nor_users_answers_open_for_ttl_then_asks_again():
    now = [0.0]
    cache, accounts = CountingCache(), Accounts("gone")
    cache.down = accounts.failing = True
    rev = Revocations(cache, accounts, ttl=1.0, clock=lambda: now[0])
    assert await rev.is_closed(claims("gone")) is False        # availability: logged, not refused
    assert await rev.is_closed(claims("gone")) is False and accounts.asked == 1
    accounts.failing = False
    now[0] += 1.01
    assert await rev.is_closed(claims("gone")) is True


async def test_an_unconfirmed_answer_is_not_kept_for_the_life():
    now = [0.0]
    cache, accounts = CountingCache(), Accounts("gone")
    rev = Revocations(cache, accounts, ttl=1.0, clock=lambda: now[0])
    cache.restart(at=time.time())
    accounts.failing = True
    old = int(time.time()) - 60
    assert await rev.is_closed(claims("gone", old)) is False
    accounts.failing = False
    now[0] += 1.01
    assert await rev.is_closed(claims("gone", old)) is True
