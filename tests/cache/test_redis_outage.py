"""Redis is optional at run time, against a real redis-server of the test's own: paused (SIGSTOP)
it costs a request at most the cache bound and the API keeps answering from the stores (reads the
gateway serves from the cache, and one the jobs service serves from it); resumed, the cache is
used again; restarted empty, a closed account's tokens are still refused on a
gateway that never saw the close (the users store is asked). The services and the gateway run in
this process on their SQLite stores (workup.testing), talking in process or over RabbitMQ. The closed account is tried on a jobs route:
the users routes would refuse it anyway, as the users service checks its store on every command."""

from __future__ import annotations

import time

import msgspec
import pytest
import trio

from workup.cache import RedisCache, closed_account_key
from workup.gateway import create_app, serve_app
from workup.messages import users as m
from workup.messages.jobs import proposals_cache_key
from workup.settings import Settings
from workup.testing import CONTROL_KEY, JWT_KEY, PASSWORD, running_system

from ._private_redis import PrivateRedis

BOUND = 0.2      # cache_timeout of these systems
RETRY = 0.5      # cache_retry
SLACK = 1.0      # a loaded 2-core machine: scheduling, SQLite and the in-process RPC around the bound
SERVICES = ("users", "payments", "contracts", "jobs")
SENTINEL = b'{"userId":"from-the-cache","email":"x@example.com","userType":"CLIENT","name":"cached"}'


@pytest.fixture
def redis():
    server = PrivateRedis()
    server.start()
    try:
        yield server
    finally:
        server.close()


async def _a_job_with_a_planted_proposal_list(sys, raw, client, freelancer):
    """A job with one proposal, and in Redis a doctored copy of its proposal list at a version no
    write will reach: whoever answers with it read the cache."""
    r = await sys.http.post("/api/v1/jobs", headers=client.auth,
                            json={"title": "Paint a fence", "description": "white, two coats", "budget": 300})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    r = await sys.http.post(f"/api/v1/jobs/{job_id}/proposals", headers=freelancer.auth, json={
        "coverLetter": "I paint well", "jobDuration": "LESS_THAN_A_MONTH",
        "milestones": [{"description": "all", "amount": 300, "dueDate": "2030-01-01"}]})
    assert r.status_code == 201, r.text
    proposals = f"/api/v1/jobs/{job_id}/proposals"
    r = await sys.http.get(proposals, headers=client.auth)
    assert r.status_code == 200 and r.json()[0]["coverLetter"] == "I paint well"
    planted = r.content.replace(b"I paint well", b"from the cache")
    assert await raw.set(proposals_cache_key(job_id), planted, version=10**15, ttl=60)
    assert (await sys.http.get(proposals, headers=client.auth)).content == planted
    return job_id, proposals, planted


def settings_for(redis: PrivateRedis, data_dir) -> Settings:
    return Settings(data_dir=str(data_dir), jwt_key=JWT_KEY, control_key=CONTROL_KEY, redis_url=redis.url,
                    cache_timeout=BOUND, cache_retry=RETRY)


async def timed_get(http, path, auth):
    start = time.monotonic()
    r = await http.get(path, headers=auth)
    return r, time.monotonic() - start


MODES = pytest.mark.parametrize("mode", ["embedded", "distributed"])   # distributed: over the test RabbitMQ


@MODES
async def test_a_paused_redis_costs_a_request_at_most_the_bound_and_is_used_again_after(redis, tmp_path, mode):
    raw = RedisCache(redis.url)   # straight to the server, no guard: what the test plants and reads
    async with running_system(mode, SERVICES, settings=settings_for(redis, tmp_path)) as sys:
        client = await sys.register_client()
        freelancer = await sys.register_freelancer()
        _, proposals, planted = await _a_job_with_a_planted_proposal_list(sys, raw, client, freelancer)
        me_key = m.user_cache_key(m.CACHED_ME, client.id)
        profile_key = m.user_cache_key(m.CACHED_CLIENT_PROFILE, client.id)
        r = await sys.http.get("/api/v1/users/client/profile", headers=client.auth)
        assert r.status_code == 200 and await raw.get(profile_key) is not None   # filled in Redis
        # the gateway serves the me view from Redis: a planted entry (newer version) is what it answers
        assert await raw.set(me_key, SENTINEL, version=10**15, ttl=60)
        r = await sys.http.get("/api/v1/users/me", headers=client.auth)
        assert r.content == SENTINEL

        redis.pause()
        try:
            for _ in range(5):
                r, took = await timed_get(sys.http, "/api/v1/users/me", client.auth)
                assert r.status_code == 200 and r.json()["userId"] == client.id   # from the store
                assert took < BOUND + SLACK, took
            # a write while the cache is away answers without waiting on it
            start = time.monotonic()
            r = await sys.http.put("/api/v1/users/client/profile", headers=client.auth, json={"city": "Paused"})
            assert r.status_code == 200, r.text
            assert time.monotonic() - start < BOUND + SLACK
            r, took = await timed_get(sys.http, "/api/v1/users/client/profile", client.auth)
            assert r.json()["city"] == "Paused" and took < BOUND + SLACK
            assert profile_key in sys.cache.pending      # its invalidation waits for the cache
            # a read the jobs service serves from the cache itself (readcache.lookup) goes to its store
            r, took = await timed_get(sys.http, proposals, client.auth)
            assert r.status_code == 200 and r.json()[0]["coverLetter"] == "I paint well" and took < BOUND + SLACK
        finally:
            redis.resume()

        # back: within a retry period or so the gateway reads Redis again (the planted entry)
        with trio.fail_after(RETRY + 5):
            while (await sys.http.get("/api/v1/users/me", headers=client.auth)).content != SENTINEL:
                await trio.sleep(0.05)
        with trio.fail_after(RETRY + 5):
            while sys.cache.pending:
                await trio.sleep(0.05)
        # the invalidation skipped during the pause landed: the entry read before the write is gone
        r = await sys.http.get("/api/v1/users/client/profile", headers=client.auth)
        assert r.json()["city"] == "Paused"
        # and the jobs service reads its entry from Redis again
        assert (await sys.http.get(proposals, headers=client.auth)).content == planted
    await raw.aclose()


@MODES
async def test_a_closed_accounts_token_is_refused_after_redis_restarts_empty(redis, tmp_path, mode):
    raw = RedisCache(redis.url)
    settings = settings_for(redis, tmp_path)
    async with running_system(mode, SERVICES, settings=settings) as sys:
        # a second gateway, as in a deployment of several: it never sees the DELETE
        other = create_app(settings, sys.transport, sys.cache, jwt_keys=JWT_KEY)
        other_url = await sys.nursery.start(serve_app, other)
        freelancer = await sys.register_freelancer()
        client = await sys.register_client()
        for account in (freelancer, client):
            r = await sys.http.get(f"{other_url}/api/v1/users/me", headers=account.auth)
            assert r.status_code == 200
        assert (await sys.http.get(f"{other_url}/api/v1/jobs/me/proposals", headers=freelancer.auth)).status_code == 200
        r = await sys.http.request("DELETE", "/api/v1/users/me", headers=freelancer.auth, json={"password": PASSWORD})
        assert r.status_code == 204, r.text
        assert await raw.get_flag(closed_account_key(freelancer.id)) is not None

        redis.restart()
        assert await raw.get_flag(closed_account_key(freelancer.id)) is None   # the flag is gone
        restarted = time.monotonic()
        # the other gateway's memos (the open answer, the cache's life) are at most 1 s old
        proposals = f"{other_url}/api/v1/jobs/me/proposals"
        with trio.fail_after(2 * 1.0 + SLACK + 5):
            while (await sys.http.get(proposals, headers=freelancer.auth)).status_code != 401:
                await trio.sleep(0.05)
        assert time.monotonic() - restarted < 2 * 1.0 + SLACK
        for path in ("/api/v1/jobs/me/proposals", "/api/v1/users/me", "/api/v1/users/freelancer/profile"):
            r = await sys.http.get(f"{other_url}{path}", headers=freelancer.auth)
            assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
        # an open account's token issued before the restart keeps working
        r = await sys.http.get(f"{other_url}/api/v1/users/me", headers=client.auth)
        assert r.status_code == 200 and r.json()["userId"] == client.id
        assert (await sys.http.get(f"{other_url}/api/v1/jobs/me", headers=client.auth)).status_code == 200

        # and a gateway started after the restart refuses it at its first request
        third = create_app(settings, sys.transport, sys.cache, jwt_keys=JWT_KEY)
        third_url = await sys.nursery.start(serve_app, third)
        r = await sys.http.get(f"{third_url}/api/v1/jobs/me/proposals", headers=freelancer.auth)
        assert r.status_code == 401
        # the login is refused too: the account is closed in the store
        r = await sys.http.post(f"{third_url}/api/v1/users/login",
                                json={"email": freelancer.email, "password": PASSWORD})
        assert r.status_code == 401
    await raw.aclose()


async def test_a_restarted_redis_is_picked_up_on_the_next_operation(redis):
    """The pooled connections died with the server: the first command after the restart is
    retried on a fresh connection instead of failing (and opening the breaker)."""
    cache = RedisCache(redis.url)
    try:
        assert await cache.set("workup:test:k", b"v", version=1, ttl=60)
        await cache.set_flag("workup:test:f")
        redis.restart()
        assert await cache.get("workup:test:k") is None      # empty, and no CacheUnavailable
        assert await cache.get_flag("workup:test:f") is None
    finally:
        await cache.aclose()


def test_private_redis_restart_is_a_new_life(redis):
    async def life() -> tuple[str, float]:
        cache = RedisCache(redis.url)
        try:
            got = await cache.life()
            return got.id, got.started_at
        finally:
            await cache.aclose()

    first = trio.run(life)
    assert first[1] <= time.time()
    redis.restart()
    second = trio.run(life)
    assert second[0] != first[0] and second[1] >= first[1]
    msgspec.json.encode(second)   # plain data
