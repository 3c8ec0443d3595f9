"""A subset of the contract on the distributed system: `workup up` on RabbitMQ, Redis, PostgreSQL
(payments), a MongoDB-wire server (users) and Cassandra (jobs, contracts), each in a database /
keyspace / queue prefix of its own that is dropped afterwards (see _distributed.py). A server that
does not answer fails these tests, it never skips them."""

from __future__ import annotations

import time
from typing import Iterator

import httpx
import pytest

from ._distributed import Distributed
from ._harness import (API, PASSWORD, Running, hold, expect, problem, register_client, register_freelancer,
    resign)
from ._scenarios import concurrent_withdrawals, idempotent_deposit, marketplace_flow, races, search_paging
from ._ws import proposal_events


@pytest.fixture(scope="module")
def dist(distributed_system: Distributed) -> Iterator[Running]:
    yield from hold(distributed_system.running(), distributed_system.close, "distributed workup up")


@pytest.fixture(scope="module")
def dhttp(dist: Running) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=dist.base_url, timeout=30) as client:
        yield client


def test_operations_and_unknown_route(dhttp: httpx.Client) -> None:
    assert dhttp.get("/health").status_code == 200
    assert dhttp.get("/metrics").status_code == 200
    problem(dhttp.get(f"{API}/nope"), 404)


def test_users_and_tokens(dhttp: httpx.Client) -> None:
    f = register_freelancer(dhttp)
    problem(dhttp.post(f"{API}/users/clients/register",
                       json={"email": f.email.upper(), "password": PASSWORD, "clientName": "X"}), 409)
    login = expect(dhttp.post(f"{API}/users/login", json={"email": f.email, "password": PASSWORD}), 200)
    assert login["userId"] == f.id
    expired = resign(f.token, exp=int(time.time()) - 60)
    problem(dhttp.get(f"{API}/users/me", headers={"Authorization": f"Bearer {expired}"}), 401)
    problem(dhttp.get(f"{API}/users/client/profile", headers=f.auth), 403)
    r = dhttp.request("DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=f.auth)
    assert r.status_code == 204, (r.status_code, r.text)
    problem(dhttp.get(f"{API}/users/me", headers=f.auth), 401)
    problem(dhttp.post(f"{API}/users/login", json={"email": f.email, "password": PASSWORD}), 401)


def test_search_paging(dhttp: httpx.Client) -> None:
    search_paging(dhttp, register_client(dhttp))


def test_marketplace_flow(dhttp: httpx.Client) -> None:
    marketplace_flow(dhttp)


def test_idempotent_deposit(dhttp: httpx.Client) -> None:
    idempotent_deposit(dhttp, register_freelancer(dhttp))


def test_races_keep_the_409_rules(dhttp: httpx.Client) -> None:
    races(dhttp)


def test_concurrent_withdrawals(dhttp: httpx.Client) -> None:
    concurrent_withdrawals(dhttp)


async def test_proposal_events_over_rabbitmq(dist: Running) -> None:
    await proposal_events(dist)
