"""Every payments route and error code through the real gateway (HTTP), on the real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest
import trio

from workup.transport.envelope import SERVICE_CALLER
from workup.messages import payments as m
from workup.settings import Settings
from workup.testing import fake_service, running_system

from ._http import P, payments_system

D = Decimal


@pytest.fixture
async def sys(pg_url, tmp_path):
    async with payments_system(pg_url, str(tmp_path)) as s:
        yield s


def exact(r) -> object:
    return json.loads(r.content, parse_float=Decimal)


def problem(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and "title" in body and "Traceback" not in r.text
    return body


async def test_roles_are_checked_first(sys):
    client, freelancer, admin = sys.user("CLIENT"), sys.user("FREELANCER"), sys.user("ADMIN")
    some = uuid.uuid4().hex
    paths = [("GET", "wallet"), ("POST", "wallet/deposit"), ("POST", "wallet/withdraw"),
             ("GET", "wallet/transactions"), ("GET", "wallet/transactions/bad-id"), ("GET", "requests"),
             ("GET", "transactions")]
    for me, wrong in (("clients/me", (freelancer, admin)), ("freelancers/me", (client, admin))):
        for method, path in paths:
            assert (await sys.http.request(method, f"{P}/{me}/{path}")).status_code == 401
            for who in wrong:
                problem(await sys.http.request(method, f"{P}/{me}/{path}", headers=who.auth, content=b"junk"), 403)
    problem(await sys.http.get(f"{P}/requests/not-an-id", headers=admin.auth), 403)
    problem(await sys.http.post(f"{P}/requests/not-an-id/pay", headers=freelancer.auth), 403)
    problem(await sys.http.post(f"{P}/requests/{some}/pay", headers=admin.auth), 403)
    problem(await sys.http.get(f"{P}/requests/{some}"), 401)
    problem(await sys.http.get(f"{P}/nothing/here", headers=client.auth), 404)


async def test_wallet_routes(sys):
    for role in ("CLIENT", "FREELANCER"):
        u = sys.user(role)        # no CreateWallet: a wallet holder always has a wallet
        assert exact(await sys.http.get(f"{u.me}/wallet", headers=u.auth)) == {"balance": 0}
        r = await sys.http.post(f"{u.me}/wallet/deposit", content=b'{"amount": 100.10, "description": "in"}',
                                headers={**u.auth, "content-type": "application/json"})
        assert r.status_code == 200 and r.content == b'{"balance":100.10}'
        r = await sys.http.post(f"{u.me}/wallet/withdraw", json={"amount": 0.1}, headers=u.auth)
        assert exact(r) == {"balance": D("100.00")}
        body = problem(await sys.http.post(f"{u.me}/wallet/withdraw", json={"amount": 100.01}, headers=u.auth), 409)
        assert body["detail"] == "insufficient balance"
        assert exact(await sys.http.get(f"{u.me}/wallet", headers=u.auth)) == {"balance": D("100.00")}
        history = (await sys.http.get(f"{u.me}/wallet/transactions", headers=u.auth)).json()
        assert [(t["transactionType"], t["amount"], t["description"]) for t in history] == [
            ("DEBIT", 0.1, None), ("CREDIT", 100.1, "in")]
        assert set(history[0]) == {"id", "amount", "transactionType", "description", "paymentTransactionId", "createdAt"}
        assert history[0]["createdAt"].endswith("Z")
        one = await sys.http.get(f"{u.me}/wallet/transactions/{history[1]['id']}", headers=u.auth)
        assert one.json() == history[1]
        other = sys.user(role)
        problem(await sys.http.get(f"{other.me}/wallet/transactions/{history[1]['id']}", headers=other.auth), 404)
        problem(await sys.http.get(f"{u.me}/wallet/transactions/{uuid.uuid4()}", headers=u.auth), 404)
        problem(await sys.http.get(f"{u.me}/wallet/transactions/x'1", headers=u.auth), 400)


BAD_MONEY = [
    (b'{"amount": 0}', "amount"), (b'{"amount": -5}', "amount"), (b'{"amount": 1.001}', "amount"),
    (b'{"amount": 1000000000.01}', "amount"), (b'{"amount": 1e10}', "amount"), (b'{"amount": "12"}', "amount"),
    (b'{"amount": null}', "amount"), (b'{"amount": true}', "amount"), (b'{}', "amount"),
    (b'{"amount": 5, "extra": 1}', None), (b'{"amount": 5, "description": 7}', "description"),
    (b'[5]', None), (b'{"amount": 5', None), (b'', None),
]


async def test_bad_money_bodies_are_400(sys):
    u = sys.user("CLIENT")
    for payload, field in BAD_MONEY:
        for op in ("deposit", "withdraw"):
            r = await sys.http.post(f"{u.me}/wallet/{op}", content=payload,
                                    headers={**u.auth, "content-type": "application/json"})
            body = problem(r, 400)
            if field is not None:
                assert [e["field"] for e in body["errors"]] == [field], (payload, body)
    assert exact(await sys.http.get(f"{u.me}/wallet", headers=u.auth)) == {"balance": 0}


async def test_non_json_body_is_415_and_limits(sys):
    u = sys.user("CLIENT")
    problem(await sys.http.post(f"{u.me}/wallet/deposit", content=b"amount=5",
                                headers={**u.auth, "content-type": "application/x-www-form-urlencoded"}), 415)
    r = await sys.http.post(f"{u.me}/wallet/deposit", json={"amount": 1000000000}, headers=u.auth)
    assert exact(r) == {"balance": D("1000000000.00")}


async def test_idempotency_key_over_http(sys):
    u = await sys.funded("CLIENT")
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await sys.http.post(f"{u.me}/wallet/deposit", json={"amount": 10}, headers={**u.auth, **key})
    again = await sys.http.post(f"{u.me}/wallet/deposit", json={"amount": 10}, headers={**u.auth, **key})
    assert first.status_code == again.status_code == 200 and first.content == again.content
    refused = await sys.http.post(f"{u.me}/wallet/withdraw", json={"amount": 50}, headers={**u.auth, **key})
    assert refused.status_code == 409
    await sys.http.post(f"{u.me}/wallet/deposit", json={"amount": 100}, headers=u.auth)
    replay = await sys.http.post(f"{u.me}/wallet/withdraw", json={"amount": 50}, headers={**u.auth, **key})
    assert (replay.status_code, replay.content) == (409, refused.content)
    assert exact(await sys.http.get(f"{u.me}/wallet", headers=u.auth)) == {"balance": 110}
    problem(await sys.http.post(f"{u.me}/wallet/deposit", json={"amount": 1},
                                headers={**u.auth, "Idempotency-Key": "x" * 300}), 400)
    # a refusal at the gateway (400) is the first answer too, and a refusal after a success
    # gets the success
    bad = {**u.auth, "Idempotency-Key": "bad-first"}
    first_400 = await sys.http.post(f"{u.me}/wallet/withdraw", json={"amount": 0.001}, headers=bad)
    assert problem(first_400, 400)["errors"][0]["field"] == "amount"
    retry = await sys.http.post(f"{u.me}/wallet/withdraw", json={"amount": 1}, headers=bad)
    assert (retry.status_code, retry.content) == (400, first_400.content)
    retry = await sys.http.post(f"{u.me}/wallet/deposit", json={"amount": 10}, headers={**u.auth, **key})
    assert (retry.status_code, retry.content) == (200, first.content)
    retry = await sys.http.post(f"{u.me}/wallet/deposit", json={"amount": "x"}, headers={**u.auth, **key})
    assert (retry.status_code, retry.content) == (200, first.content)
    assert exact(await sys.http.get(f"{u.me}/wallet", headers=u.auth)) == {"balance": 110}


async def test_request_routes_and_pay(sys):
    client = await sys.funded("CLIENT", "100")
    freelancer, stranger = sys.user("FREELANCER"), sys.user("CLIENT")
    request_id, cmd = await sys.open_request(client, freelancer, "75.25")
    for who in (client, freelancer):
        r = await sys.http.get(f"{P}/requests/{request_id}", headers=who.auth)
        assert r.status_code == 200, r.text
        req = exact(r)
        assert req == {**req, "id": request_id, "clientId": client.id, "freelancerId": freelancer.id,
                       "contractId": cmd.contract_id, "milestoneId": cmd.milestone_id, "amount": D("75.25"),
                       "status": "PENDING"}
        assert set(req) == {"id", "clientId", "freelancerId", "contractId", "milestoneId", "amount", "status",
                            "createdAt", "updatedAt"}
    problem(await sys.http.get(f"{P}/requests/{request_id}", headers=stranger.auth), 403)
    problem(await sys.http.get(f"{P}/requests/{uuid.uuid4()}", headers=client.auth), 404)
    problem(await sys.http.get(f"{P}/requests/nope", headers=client.auth), 400)
    assert [r["id"] for r in (await sys.http.get(f"{client.me}/requests", headers=client.auth)).json()] == [request_id]
    assert [r["id"] for r in (await sys.http.get(f"{freelancer.me}/requests", headers=freelancer.auth)).json()] == [request_id]
    assert (await sys.http.get(f"{stranger.me}/requests", headers=stranger.auth)).json() == []

    problem(await sys.http.post(f"{P}/requests/{request_id}/pay", headers=stranger.auth), 403)
    problem(await sys.http.post(f"{P}/requests/{uuid.uuid4().hex}/pay", headers=client.auth), 404)
    problem(await sys.http.post(f"{P}/requests/bad/pay", headers=client.auth), 400)
    paid = await sys.http.post(f"{P}/requests/{request_id}/pay", headers=client.auth)
    assert paid.status_code == 200, paid.text
    result = paid.json()
    assert result == {"transactionId": result["transactionId"], "paymentRequestId": request_id, "status": "SUCCESS"}
    body = problem(await sys.http.post(f"{P}/requests/{request_id}/pay", headers=client.auth), 409)
    assert body["detail"] == "payment request already paid"
    assert exact(await sys.http.get(f"{P}/requests/{request_id}", headers=client.auth))["status"] == "PAID"
    assert exact(await sys.http.get(f"{client.me}/wallet", headers=client.auth)) == {"balance": D("24.75")}
    assert exact(await sys.http.get(f"{freelancer.me}/wallet", headers=freelancer.auth)) == {"balance": D("75.25")}
    for who in (client, freelancer):
        [ptx] = (await sys.http.get(f"{who.me}/transactions", headers=who.auth)).json()
        assert ptx == {**ptx, "id": result["transactionId"], "paymentRequestId": request_id, "amount": 75.25,
                       "status": "SUCCESS"}
        entry = (await sys.http.get(f"{who.me}/wallet/transactions", headers=who.auth)).json()[0]
        assert entry["paymentTransactionId"] == result["transactionId"]
        assert entry["transactionType"] == ("DEBIT" if who is client else "CREDIT")
    await sys.wait_for(lambda: sys.contracts.paid_for(cmd.milestone_id))
    assert [p.payment_request_id for p in sys.contracts.paid_for(cmd.milestone_id)] == [request_id]

    # insufficient balance and cancelled: 409, nothing changes
    second, cmd2 = await sys.open_request(client, freelancer, "30")
    body = problem(await sys.http.post(f"{P}/requests/{second}/pay", headers=client.auth), 409)
    assert body["detail"] == "insufficient balance"
    reply = await sys.t.call("payments.CancelContractRequests", m.CancelContractRequests(contract_id=cmd2.contract_id),
                             caller=SERVICE_CALLER, timeout=10)
    assert reply.status == 200
    assert exact(await sys.http.get(f"{P}/requests/{second}", headers=freelancer.auth))["status"] == "CANCELLED"
    await sys.http.post(f"{client.me}/wallet/deposit", json={"amount": 100}, headers=client.auth)
    body = problem(await sys.http.post(f"{P}/requests/{second}/pay", headers=client.auth), 409)
    assert body["detail"] == "payment request is cancelled"
    assert exact(await sys.http.get(f"{client.me}/wallet", headers=client.auth)) == {"balance": D("124.75")}


async def test_pay_idempotency_key(sys):
    client = await sys.funded("CLIENT", "50")
    freelancer = sys.user("FREELANCER")
    request_id, _ = await sys.open_request(client, freelancer, "20")
    key = {**client.auth, "Idempotency-Key": "pay-once"}
    first = await sys.http.post(f"{P}/requests/{request_id}/pay", headers=key)
    second = await sys.http.post(f"{P}/requests/{request_id}/pay", headers=key)
    assert first.status_code == second.status_code == 200 and first.content == second.content
    bad = await sys.http.post(f"{P}/requests/not-an-id/pay", headers=key)
    assert problem(bad, 400) and (await sys.http.post(f"{P}/requests/not-an-id/pay", headers=key)).content == bad.content
    other, _ = await sys.open_request(client, freelancer, "20")
    # the same key on another request's route is another operation
    assert (await sys.http.post(f"{P}/requests/{other}/pay", headers=key)).json()["paymentRequestId"] == other
    assert exact(await sys.http.get(f"{client.me}/wallet", headers=client.auth)) == {"balance": D("10.00")}


async def test_body_over_the_limit_is_413(sys):
    u = sys.user("CLIENT")
    big = b'{"amount": 1, "description": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    problem(await sys.http.post(f"{u.me}/wallet/deposit", content=big,
                                headers={**u.auth, "content-type": "application/json"}), 413)


async def test_unavailable_is_503_and_late_is_504(tmp_path):
    """No payments instance: 503 with Retry-After; an instance slower than the deadline: 504."""
    async def get_wallet(ctx, req: m.GetMyWallet) -> None:
        await trio.sleep(3)
    slow = fake_service("payments", GetMyWallet=get_wallet)

    async with running_system("embedded", [], settings=Settings(data_dir=str(tmp_path)), jwt_key="k" * 40,
                              request_timeout=0.5) as sys:
        auth = {"Authorization": f"Bearer {sys.token_for(uuid.uuid4().hex, 'CLIENT')}"}
        r = await sys.http.get(f"{P}/clients/me/wallet", headers=auth)
        problem(r, 503)
        assert r.headers["Retry-After"]
        await sys.start("payments", slow)
        problem(await sys.http.get(f"{P}/clients/me/wallet", headers=auth), 504)
