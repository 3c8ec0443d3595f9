"""The payments commands over the in-process transport, on the real PostgreSQL, with a fake peer."""

from __future__ import annotations

import uuid
from decimal import Decimal

import msgspec
import pytest

from workup.cache import MemoryCache, open_cache
from workup.transport.envelope import SERVICE_CALLER, Caller
from workup.messages import payments as m
from workup.settings import Settings

from ._harness import running

D = Decimal


@pytest.fixture
async def h(pg_url, tmp_path):
    async with running(Settings(data_dir=str(tmp_path), payments_postgres_url=pg_url)) as harness:
        yield harness


async def test_wallet_commands(h):
    client = await h.user("CLIENT")
    assert await h.ok(m.GetMyWallet(), client) == {"balance": 0}
    again = await h.ok(m.CreateWallet(user_id=client.user_id, role="CLIENT"), SERVICE_CALLER)
    assert again == {"balance": 0}
    assert (await h.call(m.CreateWallet(user_id="x", role="CLIENT"), client)).status == 403
    reply = await h.call(m.Deposit(amount=D("12.30"), description="salary"), client)
    assert (reply.status, reply.body) == (200, b'{"balance":12.30}')
    assert await h.ok(m.Withdraw(amount=D("2.30")), client) == {"balance": 10}
    refused = await h.call(m.Withdraw(amount=D("10.01")), client)
    assert refused.status == 409 and msgspec.json.decode(refused.body)["detail"] == "insufficient balance"
    for bad in ("0", "-1", "0.001", "1000000000.01", "NaN", "Infinity"):
        r = await h.call(m.Deposit(amount=D(bad)), client)
        assert r.status == 400, bad
    assert await h.ok(m.GetWalletOf(user_id=client.user_id), SERVICE_CALLER) == {"balance": 10}
    history = await h.ok(m.ListWalletTransactions(), client)
    assert [(t["transactionType"], t["amount"]) for t in history] == [("DEBIT", 2.3), ("CREDIT", 12.3)]
    one = await h.ok(m.GetWalletTransaction(id=history[1]["id"]), client)
    assert one == history[1] and one["description"] == "salary"
    other = await h.user("FREELANCER")
    assert (await h.call(m.GetWalletTransaction(id=history[1]["id"]), other)).status == 404
    assert (await h.call(m.GetWalletTransaction(id="nope"), client)).status == 404
    admin = Caller(uuid.uuid4().hex, "ADMIN")
    for req in (m.GetMyWallet(), m.Deposit(amount=D(1)), m.ListMyRequests()):
        assert (await h.call(req, admin)).status == 403


async def test_idempotency_key_returns_first_answer(h):
    client = await h.user("CLIENT")
    first = await h.call(m.Deposit(amount=D("5"), idempotency_key="abc"), client)
    retry = await h.call(m.Deposit(amount=D("5"), idempotency_key="abc"), client)
    assert (retry.status, retry.body) == (first.status, first.body) == (200, b'{"balance":5.00}')
    refused = await h.call(m.Withdraw(amount=D("50"), idempotency_key="w"), client)
    await h.ok(m.Deposit(amount=D("100")), client)
    replay = await h.call(m.Withdraw(amount=D("50"), idempotency_key="w"), client)
    assert (replay.status, replay.body) == (refused.status, refused.body) and replay.status == 409
    assert await h.ok(m.GetMyWallet(), client) == {"balance": 105}
    assert (await h.call(m.Deposit(amount=D(1), idempotency_key="x" * 256), client)).status == 400


async def test_request_pay_and_milestone_delivery(h):
    client = await h.user("CLIENT", "100.00")
    freelancer = await h.user("FREELANCER")
    stranger = await h.user("CLIENT")
    request_id, cmd = await h.request(client, freelancer, "60.50")
    assert (await h.request(client, freelancer, "60.50"))[0] != request_id     # other milestone
    assert await h.ok(cmd, SERVICE_CALLER, status=201) == {"id": request_id}     # same milestone
    await h.wait_for(lambda: any(e.type == "payment.requested" and e.data == {"paymentRequestId": request_id}
                                 for e in h.events))
    requested = [e for e in h.events if e.data.get("paymentRequestId") == request_id]
    assert [(e.type, e.recipients) for e in requested] == [("payment.requested", [client.user_id])]

    got = await h.ok(m.GetPaymentRequest(id=request_id), freelancer)
    assert (got["status"], got["amount"], got["clientId"], got["milestoneId"]) == (
        "PENDING", 60.5, client.user_id, cmd.milestone_id)
    assert (await h.call(m.GetPaymentRequest(id=request_id), stranger)).status == 403
    assert (await h.call(m.GetPaymentRequest(id=uuid.uuid4().hex), client)).status == 404
    assert (await h.call(m.PayRequest(id=request_id), freelancer)).status == 403
    assert (await h.call(m.PayRequest(id=request_id), stranger)).status == 403
    assert (await h.call(m.PayRequest(id=uuid.uuid4().hex), client)).status == 404

    paid = await h.ok(m.PayRequest(id=request_id), client)
    assert paid["paymentRequestId"] == request_id and paid["status"] == "SUCCESS"
    await h.wait_for(lambda: h.contracts.paid_for(cmd.milestone_id))
    assert [p.payment_request_id for p in h.contracts.paid_for(cmd.milestone_id)] == [request_id]
    def paid_events():
        return [e.recipients for e in h.events if e.type == "payment.paid" and e.data["paymentRequestId"] == request_id]
    await h.wait_for(paid_events)
    assert paid_events() == [[freelancer.user_id]]
    again = await h.call(m.PayRequest(id=request_id), client)
    assert again.status == 409 and msgspec.json.decode(again.body)["detail"] == "payment request already paid"
    assert await h.ok(m.GetMyWallet(), client) == {"balance": 39.5}
    assert await h.ok(m.GetMyWallet(), freelancer) == {"balance": 60.5}
    [ptx] = await h.ok(m.ListMyTransactions(), client)
    assert ptx["id"] == paid["transactionId"] and await h.ok(m.ListMyTransactions(), freelancer) == [ptx]
    assert [r["id"] for r in await h.ok(m.ListMyRequests(), freelancer)][-1] == request_id
    assert await h.ok(m.ListMyRequests(), stranger) == []


async def test_pay_with_key_and_cancel(h):
    client = await h.user("CLIENT", "10")
    freelancer = await h.user("FREELANCER")
    request_id, cmd = await h.request(client, freelancer, "20")
    short = await h.call(m.PayRequest(id=request_id, idempotency_key="k"), client)
    assert short.status == 409
    await h.ok(m.Deposit(amount=D("10")), client)
    assert (await h.call(m.PayRequest(id=request_id, idempotency_key="k"), client)).body == short.body
    ok = await h.call(m.PayRequest(id=request_id, idempotency_key="k2"), client)
    assert ok.status == 200
    assert (await h.call(m.PayRequest(id=request_id, idempotency_key="k2"), client)).body == ok.body
    assert await h.ok(m.GetMyWallet(), client) == {"balance": 0}

    second, cmd2 = await h.request(client, freelancer, "5")
    await h.ok(m.CancelContractRequests(contract_id=cmd2.contract_id), SERVICE_CALLER)
    assert (await h.ok(m.GetPaymentRequest(id=second), client))["status"] == "CANCELLED"
    cancelled = await h.call(m.PayRequest(id=second), client)
    assert cancelled.status == 409
    assert (await h.call(m.CancelContractRequests(contract_id="c"), client)).status == 403
    assert (await h.call(m.CreatePaymentRequest(milestone_id="m", contract_id="c", client_id="a",
                                                freelancer_id="b", amount=D("0.001")), SERVICE_CALLER)).status == 400


async def test_reads_fill_the_cache_and_writes_invalidate_it(h):
    cache = open_cache(h.settings)
    client = await h.user("CLIENT", "30")
    freelancer = await h.user("FREELANCER")
    await h.ok(m.GetMyWallet(), client)
    assert await cache.get(m.wallet_cache_key(client.user_id)) == b'{"balance":30.00}'
    await h.ok(m.Withdraw(amount=D(1)), client)
    assert await cache.get(m.wallet_cache_key(client.user_id)) is None
    request_id, _ = await h.request(client, freelancer, "4")
    await h.ok(m.GetPaymentRequest(id=request_id), client)
    await h.ok(m.GetWalletOf(user_id=freelancer.user_id), SERVICE_CALLER)
    await h.ok(m.GetMyWallet(), freelancer)
    cached = await cache.get(m.request_cache_key(request_id, client.user_id))
    assert cached is not None and b'"PENDING"' in cached
    assert await cache.get(m.request_cache_key(request_id, freelancer.user_id)) is None   # not read yet
    await h.ok(m.PayRequest(id=request_id), client)
    assert await cache.get(m.request_cache_key(request_id, client.user_id)) is None
    assert await cache.get(m.wallet_cache_key(freelancer.user_id)) is None
    await h.ok(m.GetPaymentRequest(id=request_id), client)
    assert b'"PAID"' in await cache.get(m.request_cache_key(request_id, client.user_id))


async def test_a_replayed_success_invalidates_again(h):
    """The first attempt may have died between its commit and its invalidation: a stale entry
    planted at the old version is gone after the retry's reply."""
    client = await h.user("CLIENT", "50")
    freelancer = await h.user("FREELANCER")
    request_id, _ = await h.request(client, freelancer, "20")
    await h.ok(m.PayRequest(id=request_id, idempotency_key="p"), client)
    await h.ok(m.Deposit(amount=D(1), idempotency_key="d"), client)
    cache = h.instance.rt.deps.cache = MemoryCache()          # the invalidations never happened
    stale = {m.wallet_cache_key(client.user_id): b'{"balance":50.00}',
             m.wallet_cache_key(freelancer.user_id): b'{"balance":0.00}',
             m.request_cache_key(request_id, client.user_id): b'{"status":"PENDING"}'}
    for key, value in stale.items():
        assert await cache.set(key, value, version=0, ttl=60)
        assert await cache.get(key) == value
    await h.ok(m.PayRequest(id=request_id, idempotency_key="p"), client)
    for key in stale:
        assert await cache.get(key) is None, key
    h.instance.rt.deps.cache = cache = MemoryCache()
    assert await cache.set(m.wallet_cache_key(client.user_id), b'{"balance":0}', version=0, ttl=60)
    await h.ok(m.Deposit(amount=D(1), idempotency_key="d"), client)
    assert await cache.get(m.wallet_cache_key(client.user_id)) is None


async def test_close_wallet_is_for_services_and_closes_for_good(h):
    user = await h.user("FREELANCER")
    await h.ok(m.Deposit(amount=D("3")), user)
    assert (await h.call(m.CloseWallet(user_id=user.user_id), user)).status == 403
    refused = await h.call(m.CloseWallet(user_id=user.user_id), SERVICE_CALLER)
    assert refused.status == 409 and msgspec.json.decode(refused.body)["detail"] == "the wallet balance is 3.00, not zero"
    await h.ok(m.Withdraw(amount=D("3")), user)
    assert await h.ok(m.GetMyWallet(), user) == {"balance": 0}     # cached now
    assert (await h.call(m.CloseWallet(user_id=user.user_id), SERVICE_CALLER)).status < 300
    assert (await h.call(m.CloseWallet(user_id=user.user_id), SERVICE_CALLER)).status < 300   # idempotent
    refused = await h.call(m.Deposit(amount=D("1")), user)
    assert refused.status == 409 and msgspec.json.decode(refused.body)["detail"] == "the wallet is closed"
