"""Payments per docs/api.md: wallets, money rules, Idempotency-Key, transactions, requests, pay."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ._harness import (API, Account, expect, has_fields, is_money, problem, register_client,
    register_freelancer, timestamps)
from ._scenarios import (PAYMENT_TX_FIELDS, REQUEST_FIELDS, WALLET_TX_FIELDS, balance,
    concurrent_withdrawals, deposit, idempotent_deposit, me, new_contract, pay, to_accepted, withdraw)

P = f"{API}/payments"


@pytest.mark.parametrize("role", ["CLIENT", "FREELANCER"])
def test_wallet_deposit_withdraw_exact(http: httpx.Client, role: str) -> None:
    account = register_client(http) if role == "CLIENT" else register_freelancer(http)
    assert expect(http.get(f"{me(account)}/wallet", headers=account.auth), 200) == {"balance": 0}
    assert expect(deposit(http, account, 0.1), 200) == {"balance": 0.1}
    body = has_fields(expect(deposit(http, account, 0.2), 200), "balance")
    is_money(body["balance"], 0.3)
    assert body["balance"] == 0.3                                   # exact, not 0.30000000000000004
    r = http.post(f"{me(account)}/wallet/deposit", json={"amount": 1_000_000_000, "description": "max"}, headers=account.auth)
    assert expect(r, 200)["balance"] == 1_000_000_000.3
    assert expect(withdraw(http, account, 1_000_000_000), 200)["balance"] == 0.3
    problem(withdraw(http, account, 0.31), 409)
    assert balance(http, account) == 0.3


BAD_AMOUNTS = [({"amount": 1.005}, "amount"), ({"amount": 0}, "amount"), ({"amount": -1}, "amount"),
               ({"amount": 1_000_000_000.01}, "amount"), ({"amount": "10"}, "amount"), ({}, "amount"),
               ({"amount": True}, "amount"), ({"amount": 10, "description": 7}, "description")]


@pytest.mark.parametrize("route", ["deposit", "withdraw"])
@pytest.mark.parametrize("body,field", BAD_AMOUNTS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_AMOUNTS)])
def test_money_validation_400(http: httpx.Client, client: Account, route: str, body: dict, field: str) -> None:
    problem(http.post(f"{me(client)}/wallet/{route}", json=body, headers=client.auth), 400, fields=(field,))


def test_other_role_and_admin_403(http: httpx.Client, client: Account, freelancer: Account, admin: Account) -> None:
    problem(http.get(f"{P}/freelancers/me/wallet", headers=client.auth), 403)
    problem(http.post(f"{P}/clients/me/wallet/deposit", json={"amount": 1}, headers=freelancer.auth), 403)
    for path in ("clients/me/wallet", "freelancers/me/wallet", "clients/me/requests", "freelancers/me/transactions"):
        problem(http.get(f"{P}/{path}", headers=admin.auth), 403)
    problem(http.get(f"{P}/clients/me/wallet"), 401)


def test_concurrent_withdrawals_never_below_zero(http: httpx.Client) -> None:
    concurrent_withdrawals(http)


def test_wallet_transactions(http: httpx.Client) -> None:
    account, other = register_client(http), register_client(http)
    expect(deposit(http, account, 50), 200)
    expect(http.post(f"{me(account)}/wallet/withdraw", json={"amount": 20, "description": "cash"}, headers=account.auth), 200)
    txs = expect(http.get(f"{me(account)}/wallet/transactions", headers=account.auth), 200)
    assert isinstance(txs, list) and len(txs) == 2
    for tx in txs:
        has_fields(tx, WALLET_TX_FIELDS)
        timestamps(tx, "createdAt")
        is_money(tx["amount"])
    assert [(t["transactionType"], t["amount"]) for t in txs] == [("DEBIT", 20), ("CREDIT", 50)]   # newest first
    assert txs[0]["description"] == "cash"
    one = expect(http.get(f"{me(account)}/wallet/transactions/{txs[0]['id']}", headers=account.auth), 200)
    assert one == txs[0]
    problem(http.get(f"{me(other)}/wallet/transactions/{txs[0]['id']}", headers=other.auth), 404)
    problem(http.get(f"{me(account)}/wallet/transactions/{account.id}", headers=account.auth), 404)


# --- Idempotency-Key ---------------------------------------------------------------------------------

def test_idempotent_deposit(http: httpx.Client) -> None:
    idempotent_deposit(http, register_client(http))


def test_idempotency_key_per_route_and_per_user(http: httpx.Client) -> None:
    a, b = register_freelancer(http), register_freelancer(http)
    key = uuid.uuid4().hex
    assert expect(deposit(http, a, 100, key), 200) == {"balance": 100}
    assert expect(withdraw(http, a, 30, key), 200) == {"balance": 70}       # another route: its own effect
    assert expect(withdraw(http, a, 30, key), 200) == {"balance": 70}       # retried: stored answer
    assert expect(deposit(http, b, 5, key), 200) == {"balance": 5}          # another user: its own effect
    assert (balance(http, a), balance(http, b)) == (70, 5)


def test_idempotency_stores_failures_too(http: httpx.Client) -> None:
    account = register_client(http)
    key = uuid.uuid4().hex
    first = problem(withdraw(http, account, 40, key), 409)
    expect(deposit(http, account, 100), 200)
    again = problem(withdraw(http, account, 40, key), 409)                   # the first answer, not a new try
    assert (again["title"], again["detail"]) == (first["title"], first["detail"])
    assert balance(http, account) == 100


def test_idempotency_same_key_other_body_gets_first_answer(http: httpx.Client) -> None:
    account = register_client(http)
    key = uuid.uuid4().hex
    assert expect(deposit(http, account, 10, key), 200) == {"balance": 10}
    assert expect(deposit(http, account, 20, key), 200) == {"balance": 10}
    assert balance(http, account) == 10


def test_idempotency_stores_a_400_answer_too(http: httpx.Client) -> None:
    """docs/api.md: "the first answer for a key, whatever its status, is stored and returned again"."""
    account = register_client(http)
    key = uuid.uuid4().hex
    first = problem(deposit(http, account, 0, key), 400)
    again = problem(deposit(http, account, 5, key), 400)
    assert again == first
    assert balance(http, account) == 0


def test_idempotency_concurrent_retries_effect_once(http: httpx.Client) -> None:
    account = register_freelancer(http)
    key = uuid.uuid4().hex
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: deposit(http, account, 7, key), range(6)))
    assert [(a.status_code, a.json()) for a in answers] == [(200, {"balance": 7})] * 6, [a.text for a in answers]
    assert balance(http, account) == 7


def test_pay_idempotent_and_effect_once(http: httpx.Client) -> None:
    client, freelancer, _, milestones = new_contract(http, [40])
    request_id = to_accepted(http, client, freelancer, milestones[0]["id"])
    expect(deposit(http, client, 100), 200)
    key = uuid.uuid4().hex
    first = expect(pay(http, client, request_id, key), 200)
    assert expect(pay(http, client, request_id, key), 200) == first
    problem(pay(http, client, request_id, uuid.uuid4().hex), 409)
    problem(pay(http, register_client(http), request_id, key), 403)          # per user: not the stored 200
    assert (balance(http, client), balance(http, freelancer)) == (60, 40)


# --- payment requests and pay ------------------------------------------------------------------------

def test_requests_transactions_and_pay_rules(http: httpx.Client, admin: Account) -> None:
    client, freelancer, contract, milestones = new_contract(http, [75.25])
    request_id = to_accepted(http, client, freelancer, milestones[0]["id"])
    stranger = register_client(http)
    problem(http.get(f"{P}/requests/{request_id}", headers=stranger.auth), 403)
    problem(http.get(f"{P}/requests/{client.id}", headers=client.auth), 404)
    problem(pay(http, client, client.id), 404)
    for party in (client, freelancer):
        listed = expect(http.get(f"{me(party)}/requests", headers=party.auth), 200)
        assert [has_fields(r, REQUEST_FIELDS)["id"] for r in listed] == [request_id]
    assert expect(http.get(f"{me(stranger)}/requests", headers=stranger.auth), 200) == []

    expect(deposit(http, client, 75.24), 200)
    problem(pay(http, client, request_id), 409)                               # insufficient: nothing changes
    assert (balance(http, client), balance(http, freelancer)) == (75.24, 0)
    assert expect(http.get(f"{P}/requests/{request_id}", headers=client.auth), 200)["status"] == "PENDING"
    problem(pay(http, stranger, request_id), 403)                             # not the client who owes it
    expect(deposit(http, stranger, 1000), 200)
    problem(pay(http, stranger, request_id), 403)

    expect(deposit(http, client, 0.01), 200)
    answer = has_fields(expect(pay(http, client, request_id), 200), "transactionId paymentRequestId status")
    assert (balance(http, client), balance(http, freelancer)) == (0, 75.25)
    assert expect(http.get(f"{P}/requests/{request_id}", headers=freelancer.auth), 200)["status"] == "PAID"
    for party in (client, freelancer):
        txs = expect(http.get(f"{me(party)}/transactions", headers=party.auth), 200)
        assert [has_fields(t, PAYMENT_TX_FIELDS)["id"] for t in txs] == [answer["transactionId"]]
        assert (txs[0]["paymentRequestId"], txs[0]["amount"]) == (request_id, 75.25)
    credit = expect(http.get(f"{me(freelancer)}/wallet/transactions", headers=freelancer.auth), 200)[0]
    assert (credit["transactionType"], credit["amount"], credit["paymentTransactionId"]) == (
        "CREDIT", 75.25, answer["transactionId"])
    debit = expect(http.get(f"{me(client)}/wallet/transactions", headers=client.auth), 200)[0]
    assert (debit["transactionType"], debit["amount"], debit["paymentTransactionId"]) == (
        "DEBIT", 75.25, answer["transactionId"])
