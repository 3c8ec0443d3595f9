"""Races and conservation through the real gateway, RabbitMQ, Redis and PostgreSQL."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import pytest
import trio

from ._http import P, payments_system

D = Decimal


@pytest.fixture
async def sys(pg_url, amqp_url, redis_url, tmp_path):
    async with payments_system(pg_url, str(tmp_path), "distributed", amqp_url=amqp_url, redis_url=redis_url) as s:
        yield s


async def balance(sys, user) -> Decimal:
    r = await sys.http.get(f"{user.me}/wallet", headers=user.auth)
    assert r.status_code == 200, r.text
    return json.loads(r.content, parse_float=Decimal)["balance"]


async def test_fifty_concurrent_withdrawals_never_overdraw(sys):
    u = await sys.funded("FREELANCER", "100")
    assert await balance(sys, u) == D("100")           # and now the balance is cached in Redis
    statuses: list[int] = []

    async def withdraw() -> None:
        r = await sys.http.post(f"{u.me}/wallet/withdraw", json={"amount": 3}, headers=u.auth)
        statuses.append(r.status_code)
    async with trio.open_nursery() as n:
        for _ in range(50):
            n.start_soon(withdraw)
    assert sorted(set(statuses)) == [200, 409] and statuses.count(200) == 33, statuses
    assert await balance(sys, u) == D("1")             # never stale: the writes invalidated the cache
    history = (await sys.http.get(f"{u.me}/wallet/transactions", headers=u.auth)).json()
    assert len(history) == 34


async def test_twenty_concurrent_pays_succeed_exactly_once(sys):
    client = await sys.funded("CLIENT", "500")
    freelancer = sys.user("FREELANCER")
    request_id, cmd = await sys.open_request(client, freelancer, "120")
    answers: list[tuple[int, dict]] = []

    async def pay(i: int) -> None:
        headers = {**client.auth, "Idempotency-Key": f"try-{i}"}
        r = await sys.http.post(f"{P}/requests/{request_id}/pay", headers=headers)
        answers.append((r.status_code, r.json()))
    async with trio.open_nursery() as n:
        for i in range(20):
            n.start_soon(pay, i)
    assert sorted(s for s, _ in answers) == [200] + [409] * 19
    assert all(b["detail"] == "payment request already paid" for s, b in answers if s == 409)
    assert await balance(sys, client) == D("380") and await balance(sys, freelancer) == D("120")
    await sys.wait_for(lambda: sys.contracts.paid_for(cmd.milestone_id))
    await trio.sleep(0.3)
    assert [p.payment_request_id for p in sys.contracts.paid_for(cmd.milestone_id)] == [request_id]


@pytest.fixture
async def local_sys(pg_url, tmp_path):
    async with payments_system(pg_url, str(tmp_path), "embedded") as s:
        yield s


async def test_conservation_after_500_random_operations(local_sys):
    """Seeded mix of deposits, withdrawals (some refused), requests and pays (some refused or
    repeated), 10 at a time; afterwards the sum of balances equals deposits minus withdrawals.
    (Through the gateway on the in-process transport, to keep it quick; the races above use
    RabbitMQ and Redis.)"""
    sys = local_sys
    rnd = random.Random(20261128)
    clients = [await sys.funded("CLIENT") for _ in range(4)]
    freelancers = [await sys.funded("FREELANCER") for _ in range(3)]
    everyone = clients + freelancers
    requests: list[tuple[str, object]] = []
    external = {"in": D(0), "out": D(0)}
    plan = [rnd.choice(("deposit", "deposit", "withdraw", "withdraw", "request", "pay", "pay"))
            for _ in range(500)]
    amounts = [D(rnd.randint(1, 5000)) / 100 for _ in range(500)]
    picks = [rnd.random() for _ in range(500)]
    limiter = trio.CapacityLimiter(10)

    async def op(i: int) -> None:
        async with limiter:
            kind, amount, pick = plan[i], amounts[i], picks[i]
            if kind in ("deposit", "withdraw"):
                u = everyone[int(pick * len(everyone))]
                r = await sys.http.post(f"{u.me}/wallet/{kind}", json={"amount": float(amount)}, headers=u.auth)
                assert r.status_code in ((200,) if kind == "deposit" else (200, 409)), r.text
                if r.status_code == 200:
                    external["in" if kind == "deposit" else "out"] += amount
            elif kind == "request":
                c, f = clients[int(pick * len(clients))], freelancers[i % len(freelancers)]
                requests.append(await sys.open_request(c, f, str(amount)))
            elif requests:
                request_id, cmd = requests[int(pick * len(requests))]
                payer = next(c for c in clients if c.id == cmd.client_id)
                r = await sys.http.post(f"{P}/requests/{request_id}/pay", headers=payer.auth)
                assert r.status_code in (200, 409), r.text
    async with trio.open_nursery() as n:
        for i in range(500):
            n.start_soon(op, i)
    balances = [await balance(sys, u) for u in everyone]
    assert all(b >= 0 for b in balances)
    assert sum(balances) == external["in"] - external["out"]
    audit = await sys.instance.rt.deps.store.audit()
    assert audit.balances - audit.deposits + audit.withdrawals == 0     # the whole database agrees
