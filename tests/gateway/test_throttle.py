"""The abuse limits' pure decisions (workup/gateway/throttle.py), every rule, and the cache
counter they use (Cache.count) on the in-process cache and the real Redis (both drivers)."""

import itertools
import secrets

import pytest
import trio

from workup.cache import MemoryCache, RedisCache
from workup.gateway.throttle import (Count, Decision, Limit, account_subject, address_subject, counter_key, decide,
                                     keeps_count, limits_from)
from workup.settings import Settings

LOGIN = Limit("login-account", 3, 60)
ADDRESS = Limit("login-address", 10, 900)


# --- decide ---------------------------------------------------------------------------------------

def test_nothing_counted_is_allowed():
    assert decide([]) == Decision(True)


@pytest.mark.parametrize("used", range(0, 4))
def test_up_to_the_limit_is_allowed(used):
    assert decide([(LOGIN, Count(used, 30))]) == Decision(True, 0)


@pytest.mark.parametrize("used", [4, 5, 100])
def test_past_the_limit_is_refused_until_the_window_ends(used):
    assert decide([(LOGIN, Count(used, 29.2))]) == Decision(False, 30)


@pytest.mark.parametrize("remaining, retry_after", [
    (0.0, 1), (-1.0, 1), (0.001, 1), (1.0, 1), (1.5, 2), (59.99, 60), (60.0, 60), (3600.0, 60), (float("inf"), 60),
])
def test_retry_after_is_whole_seconds_between_one_and_the_window(remaining, retry_after):
    assert decide([(LOGIN, Count(4, remaining))]) == Decision(False, retry_after)


def test_every_combination_of_two_counters():
    # refused as soon as either is over; Retry-After is the later end of the exceeded windows
    for a_used, b_used in itertools.product(range(0, 13), repeat=2):
        decision = decide([(LOGIN, Count(a_used, 20)), (ADDRESS, Count(b_used, 500))])
        over = [w for used, limit, w in ((a_used, LOGIN, 20), (b_used, ADDRESS, 500)) if used > limit.count]
        assert decision.allowed is (not over)
        assert decision.retry_after == (max(over) if over else 0)


def test_an_exceeded_short_window_with_a_longer_unexceeded_one():
    assert decide([(LOGIN, Count(4, 5)), (ADDRESS, Count(1, 800))]) == Decision(False, 5)


# --- which outcomes stay counted ------------------------------------------------------------------

@pytest.mark.parametrize("kind, status, kept", [
    ("login", 200, False), ("login", 201, False), ("login", 204, False),
    ("login", 400, True), ("login", 401, True), ("login", 403, True), ("login", 404, True), ("login", 429, True),
    ("login", 500, False), ("login", 503, False), ("login", 504, False),
    ("register", 200, True), ("register", 201, True), ("register", 400, True), ("register", 409, True),
    ("register", 429, True), ("register", 500, False), ("register", 503, False), ("register", 504, False),
])
def test_keeps_count(kind, status, kept):
    assert keeps_count(kind, status) is kept


def test_every_status_has_an_answer():
    for kind, status in itertools.product(("login", "register"), range(100, 600)):
        expected = status < 500 and (kind == "register" or status >= 400)
        assert keeps_count(kind, status) is expected


# --- subjects and keys ----------------------------------------------------------------------------

def test_account_subject_is_one_per_account_and_hides_the_email():
    s = account_subject("Ann@Example.com")
    assert s == account_subject("  ann@example.com ") == account_subject("ANN@EXAMPLE.COM")
    assert s != account_subject("ann2@example.com")
    assert "ann" not in s and len(s) == 32


@pytest.mark.parametrize("host, subject", [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
    ("2001:DB8:1:3::1", "2001:db8:1:3::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::ffff:198.51.100.4", "198.51.100.4"),
    ("::1", "::/64"),
    ("/run/workup.sock", "/run/workup.sock"),
    ("", "unknown"),
    (None, "unknown"),
])
def test_address_subject(host, subject):
    assert address_subject(host) == subject


def test_counter_key_and_limits_from_settings():
    assert counter_key("workup", LOGIN, "abc") == "workup:gateway:login-account:workup:abc"
    assert counter_key("other", ADDRESS, "::/64") == "workup:gateway:login-address:other:::/64"
    limits = limits_from(Settings(login_limit_account=5, login_limit_address=50, login_window=60,
                                  register_limit_address=7, register_window=120))
    assert limits == {"login-account": Limit("login-account", 5, 60), "login-address": Limit("login-address", 50, 60),
                      "register-address": Limit("register-address", 7, 120)}


# --- the counter in the cache ---------------------------------------------------------------------

@pytest.fixture(params=["memory", "redis-resp", "redis-py"])
async def cache(request):
    c = MemoryCache() if request.param == "memory" else RedisCache(
        request.getfixturevalue("redis_url"), driver=request.param.removeprefix("redis-"))
    yield c
    await c.aclose()


async def test_cache_counts_within_a_window(cache):
    key = f"workup:test:gateway:{secrets.token_hex(8)}"
    assert await cache.count(key, by=-1, ttl=30) == (0, 0.0)      # giving back to nothing: nothing
    used, left = await cache.count(key, by=1, ttl=30)
    assert used == 1 and 29 < left <= 30
    assert (await cache.count(key, by=1, ttl=30))[0] == 2
    assert (await cache.count(key, by=-1, ttl=30))[0] == 1
    used, left = await cache.count(key, by=1, ttl=999)              # the window was set by the first count
    assert used == 2 and left <= 30


async def test_cache_counter_window_ends(cache):
    key = f"workup:test:gateway:{secrets.token_hex(8)}"
    assert (await cache.count(key, by=1, ttl=0.2))[0] == 1
    assert (await cache.count(key, by=1, ttl=0.2))[0] == 2
    await trio.sleep(0.35)
    assert await cache.count(key, by=-1, ttl=0.2) == (0, 0.0)
    assert (await cache.count(key, by=1, ttl=0.2))[0] == 1


async def test_cache_counter_is_atomic_under_concurrency(cache):
    key = f"workup:test:gateway:{secrets.token_hex(8)}"
    seen = []

    async def hit():
        seen.append((await cache.count(key, by=1, ttl=30))[0])

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(hit)
    assert sorted(seen) == list(range(1, 51))


async def test_memory_counters_are_bounded():
    clock = [0.0]
    cache = MemoryCache(max_entries=3, clock=lambda: clock[0])
    for i in range(3):
        await cache.count(f"k{i}", by=1, ttl=10)
    await cache.count("k3", by=1, ttl=10)               # full, no window ended: the oldest goes
    assert list(cache._counters) == ["k1", "k2", "k3"]
    clock[0] = 5
    await cache.count("k4", by=1, ttl=1)
    assert list(cache._counters) == ["k2", "k3", "k4"]
    clock[0] = 20                                         # every window ended: all of them go
    await cache.count("k5", by=1, ttl=10)
    assert list(cache._counters) == ["k5"]
