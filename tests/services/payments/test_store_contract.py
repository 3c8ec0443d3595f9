"""One contract suite for both payments stores (PostgreSQL and SQLite): money is exact, never
goes below zero, moves all-or-nothing, and every idempotent command has its effect once."""

from __future__ import annotations

import json
import random
from decimal import Decimal

import msgspec
import trio

from workup.messages.contracts import MarkMilestonePaid
from workup.messages.payments import CreatePaymentRequest
from workup.problems import ProblemError
from workup.services.payments.ops import IdemKey
from workup.services.payments.relay import SqlOutbox

from .conftest import uid

D = Decimal


def body(outcome) -> dict:
    return json.loads(outcome.body, parse_float=Decimal)


async def funded(store, amount: str) -> str:
    user = uid()
    await store.ensure_wallet(user, "CLIENT")
    if D(amount) > 0:
        assert (await store.deposit(user, D(amount), "seed")).status == 200
    return user


async def open_request(store, amount: str = "40.00", client: str | None = None):
    client = client or await funded(store, "100.00")
    freelancer = uid()
    await store.ensure_wallet(freelancer, "FREELANCER")
    cmd = CreatePaymentRequest(milestone_id=uid(), contract_id=uid(), client_id=client,
                               freelancer_id=freelancer, amount=D(amount))
    request_id, created = await store.create_request(cmd)
    assert created
    return cmd, request_id


async def test_wallet_created_once_and_starts_at_zero(store):
    user = uid()
    assert await store.ensure_wallet(user, "CLIENT") == D("0.00")
    await store.deposit(user, D("5.00"), None)
    assert await store.ensure_wallet(user, "CLIENT") == D("5.00")   # idempotent: keeps the money
    assert await store.balance(uid()) == D("0.00")


async def test_deposit_withdraw_are_exact(store):
    user = await funded(store, "0")
    for _ in range(10):
        await store.deposit(user, D("0.10"), None)
    assert await store.balance(user) == D("1.00")
    out = await store.withdraw(user, D("0.30"), "coffee")
    assert (out.status, body(out)) == (200, {"balance": D("0.70")})
    assert [(c.entity, c.id, c.version) for c in out.changed] == [("wallet", user, 11)]
    assert await store.wallet(user) == (D("0.70"), 11)
    assert out.body == b'{"balance":0.70}'
    big = await store.deposit(user, D("1000000000.00"), None)
    assert body(big) == {"balance": D("1000000000.70")}


async def test_withdraw_never_below_zero(store):
    user = await funded(store, "10.00")
    out = await store.withdraw(user, D("10.01"), None)
    assert out.status == 409 and body(out)["detail"] == "insufficient balance"
    assert await store.balance(user) == D("10.00")
    assert (await store.withdraw(user, D("10.00"), None)).status == 200
    assert await store.balance(user) == D("0.00")
    assert len(await store.wallet_transactions(user)) == 2     # the refused one left no entry


async def test_wallet_transactions_newest_first_and_own_only(store):
    user = await funded(store, "3.00")
    await store.withdraw(user, D("1.00"), "first out")
    await store.deposit(user, D("2.50"), "second in")
    history = await store.wallet_transactions(user)
    assert [(t.transaction_type, t.amount, t.description) for t in history] == [
        ("CREDIT", D("2.50"), "second in"), ("DEBIT", D("1.00"), "first out"), ("CREDIT", D("3.00"), "seed")]
    assert history[0].payment_transaction_id is None and history[0].created_at.tzinfo is not None
    assert await store.wallet_transaction(user, history[1].id) == history[1]
    other = await funded(store, "1.00")
    assert await store.wallet_transaction(other, history[1].id) is None
    assert await store.wallet_transaction(user, uid()) is None


async def test_idempotency_key_replays_first_answer_and_effect_happens_once(store):
    user = await funded(store, "0")
    key = IdemKey(user, "deposit", "k1")
    first = await store.deposit(user, D("7.00"), None, key)
    again = await store.deposit(user, D("9.00"), None, key)      # same key: the first answer
    assert (again.status, again.body, again.replayed) == (first.status, first.body, True)
    assert await store.balance(user) == D("7.00")
    # same key on another route, or by another user, is another operation
    assert (await store.withdraw(user, D("1.00"), None, IdemKey(user, "withdraw", "k1"))).status == 200
    other = await funded(store, "0")
    assert (await store.deposit(other, D("1.00"), None, IdemKey(other, "deposit", "k1"))).replayed is False
    assert await store.balance(user) == D("6.00")


async def test_idempotency_stores_error_answers_too(store):
    user = await funded(store, "1.00")
    key = IdemKey(user, "withdraw", "k")
    refused = await store.withdraw(user, D("5.00"), None, key)
    assert refused.status == 409
    await store.deposit(user, D("10.00"), None)
    retry = await store.withdraw(user, D("5.00"), None, key)
    assert (retry.status, retry.body, retry.replayed) == (409, refused.body, True)
    assert await store.balance(user) == D("11.00")


async def test_concurrent_duplicates_of_one_key_have_one_effect(store):
    user = await funded(store, "0")
    key = IdemKey(user, "deposit", "same")
    outcomes = []

    async def one() -> None:
        outcomes.append(await store.deposit(user, D("5.00"), None, key))
    async with trio.open_nursery() as n:
        for _ in range(10):
            n.start_soon(one)
    assert len({o.body for o in outcomes}) == 1 and sum(not o.replayed for o in outcomes) == 1
    assert await store.balance(user) == D("5.00")


async def test_fifty_concurrent_withdrawals_never_overdraw(store):
    user = await funded(store, "100.00")
    statuses = []

    async def one() -> None:
        statuses.append((await store.withdraw(user, D("7.00"), None)).status)
    async with trio.open_nursery() as n:
        for _ in range(50):
            n.start_soon(one)
    assert statuses.count(200) == 14 and statuses.count(409) == 36
    assert await store.balance(user) == D("2.00")


async def test_create_request_is_idempotent_on_milestone(store):
    cmd, request_id = await open_request(store)
    again = msgspec.structs.replace(cmd, amount=D("99.00"))
    assert await store.create_request(again) == (request_id, False)
    req, version = await store.get_request(request_id)
    assert (req.status, req.amount, req.milestone_id, req.client_id) == ("PENDING", D("40.00"), cmd.milestone_id, cmd.client_id)
    assert version == 0
    events = [i for i in await store.claim_outbox(100) if i.kind == "event" and request_id in i.payload.decode()]
    assert [(e.name, json.loads(e.payload)) for e in events] == [
        ("payment.requested", {"recipients": [cmd.client_id], "data": {"paymentRequestId": request_id}})]
    assert await store.get_request(uid()) is None


async def test_pay_moves_money_records_everything_and_queues_the_milestone(store):
    cmd, request_id = await open_request(store, "40.00")
    await store.claim_outbox(1000)          # clear what was queued before
    out = await store.pay(request_id, cmd.client_id)
    assert out.status == 200 and out.outbox
    assert {(c.entity, c.id, c.version) for c in out.changed} == {
        ("wallet", cmd.client_id, 2), ("wallet", cmd.freelancer_id, 1), ("request", request_id, 1)}
    assert [c.readers for c in out.changed if c.entity == "request"] == [(cmd.client_id, cmd.freelancer_id)]
    result = body(out)
    assert result["paymentRequestId"] == request_id and result["status"] == "SUCCESS"
    assert await store.balance(cmd.client_id) == D("60.00")
    assert await store.balance(cmd.freelancer_id) == D("40.00")
    req, version = await store.get_request(request_id)
    assert req.status == "PAID" and req.updated_at >= req.created_at and version == 1
    [ptx] = await store.transactions_of(cmd.client_id, "client")
    assert (ptx.id, ptx.payment_request_id, ptx.amount, ptx.status) == (result["transactionId"], request_id, D("40.00"), "SUCCESS")
    assert await store.transactions_of(cmd.freelancer_id, "freelancer") == [ptx]
    assert await store.transactions_of(cmd.freelancer_id, "client") == []
    debit = (await store.wallet_transactions(cmd.client_id))[0]
    credit = (await store.wallet_transactions(cmd.freelancer_id))[0]
    assert (debit.transaction_type, debit.amount, debit.payment_transaction_id) == ("DEBIT", D("40.00"), ptx.id)
    assert (credit.transaction_type, credit.amount, credit.payment_transaction_id) == ("CREDIT", D("40.00"), ptx.id)
    items = [i for i in await store.claim_outbox(1000) if request_id in i.payload.decode()]
    assert {i.name for i in items} == {"contracts.MarkMilestonePaid", "payment.paid"}
    call = next(i for i in items if i.kind == "call")
    assert msgspec.json.decode(call.payload, type=MarkMilestonePaid) == MarkMilestonePaid(
        milestone_id=cmd.milestone_id, payment_request_id=request_id)


async def test_pay_refusals_change_nothing(store):
    cmd, request_id = await open_request(store, "150.00")           # the client has 100
    refused = await store.pay(request_id, cmd.client_id)
    assert (refused.status, body(refused)["detail"]) == (409, "insufficient balance")
    assert (await store.pay(request_id, cmd.freelancer_id)).status == 403
    assert (await store.pay(uid(), cmd.client_id)).status == 404
    assert await store.balance(cmd.client_id) == D("100.00") and await store.balance(cmd.freelancer_id) == D("0.00")
    assert (await store.get_request(request_id))[0].status == "PENDING"
    await store.deposit(cmd.client_id, D("50.00"), None)
    assert (await store.pay(request_id, cmd.client_id)).status == 200
    again = await store.pay(request_id, cmd.client_id)
    assert (again.status, body(again)["detail"]) == (409, "payment request already paid")
    assert await store.balance(cmd.client_id) == D("0.00") and await store.balance(cmd.freelancer_id) == D("150.00")


async def close_refused(store, user: str) -> str:
    try:
        await store.close_wallet(user)
    except ProblemError as exc:
        assert exc.status == 409
        return exc.problem.detail
    raise AssertionError("the close was not refused")


async def test_close_wallet_needs_zero_then_refuses_every_movement(store):
    user = await funded(store, "5.00")
    assert await close_refused(store, user) == "the wallet balance is 5.00, not zero"
    assert (await store.deposit(user, D("1.00"), None)).status == 200      # still open
    assert (await store.withdraw(user, D("6.00"), None)).status == 200
    closed = await store.close_wallet(user)
    assert closed is not None and (closed.entity, closed.id) == ("wallet", user)
    assert await store.close_wallet(user) is None                          # idempotent
    for out in (await store.deposit(user, D("1.00"), None), await store.withdraw(user, D("1.00"), None),
                await store.deposit(user, D("1.00"), None, IdemKey(user, "deposit", "k1"))):
        assert (out.status, body(out)["detail"]) == (409, "the wallet is closed")
    assert await store.balance(user) == D("0.00")
    assert len(await store.wallet_transactions(user)) == 3                 # nothing after the close
    never_created = uid()
    assert await store.close_wallet(never_created) is not None             # created closed
    assert (await store.deposit(never_created, D("1.00"), None)).status == 409


async def test_pay_into_or_out_of_a_closed_wallet_is_refused_and_moves_nothing(store):
    cmd, request_id = await open_request(store, "40.00")
    await store.close_wallet(cmd.freelancer_id)
    refused = await store.pay(request_id, cmd.client_id)
    assert (refused.status, body(refused)["detail"]) == (409, f"the wallet of account {cmd.freelancer_id} is closed")
    assert await store.balance(cmd.client_id) == D("100.00") and await store.balance(cmd.freelancer_id) == D("0.00")
    assert (await store.get_request(request_id))[0].status == "PENDING"
    cmd2, request2 = await open_request(store, "40.00", client=await funded(store, "0"))
    await store.close_wallet(cmd2.client_id)
    assert (await store.pay(request2, cmd2.client_id)).status == 409


async def test_close_racing_deposits_never_strands_money(store):
    """Each round: a deposit and a close at once. Exactly one of them wins; a closed wallet is
    always empty."""
    for _ in range(10):
        user = await funded(store, "0")
        results: dict[str, object] = {}

        async def deposit() -> None:
            results["deposit"] = (await store.deposit(user, D("1.00"), None)).status

        async def close() -> None:
            try:
                await store.close_wallet(user)
                results["close"] = 200
            except ProblemError as exc:
                results["close"] = exc.status
        async with trio.open_nursery() as n:
            n.start_soon(deposit)
            n.start_soon(close)
        assert sorted([results["deposit"], results["close"]]) == [200, 409], results
        expected = D("0.00") if results["close"] == 200 else D("1.00")
        assert await store.balance(user) == expected


async def test_twenty_concurrent_pays_succeed_exactly_once(store):
    cmd, request_id = await open_request(store, "30.00", client=await funded(store, "1000.00"))
    statuses = []

    async def one() -> None:
        statuses.append((await store.pay(request_id, cmd.client_id)).status)
    async with trio.open_nursery() as n:
        for _ in range(20):
            n.start_soon(one)
    assert statuses.count(200) == 1 and statuses.count(409) == 19
    assert await store.balance(cmd.client_id) == D("970.00")
    assert await store.balance(cmd.freelancer_id) == D("30.00")
    assert len(await store.transactions_of(cmd.client_id, "client")) == 1


async def test_cancel_contract_requests_cancels_only_pending(store):
    client = await funded(store, "100.00")
    cmd1, paid = await open_request(store, "10.00", client)
    cmd2 = msgspec.structs.replace(cmd1, milestone_id=uid())
    pending_id, _ = await store.create_request(cmd2)
    assert (await store.pay(paid, client)).status == 200
    [changed] = await store.cancel_contract_requests(cmd1.contract_id)
    assert (changed.id, changed.version, changed.readers) == (pending_id, 1, (client, cmd1.freelancer_id))
    assert await store.cancel_contract_requests(cmd1.contract_id) == []
    assert (await store.get_request(pending_id))[0].status == "CANCELLED"
    assert (await store.get_request(paid))[0].status == "PAID"
    out = await store.pay(pending_id, client)
    assert (out.status, body(out)["detail"]) == (409, "payment request is cancelled")
    mine = await store.requests_of(client, "client")
    assert [r.id for r in mine] == [pending_id, paid]                  # newest first
    assert [r.id for r in await store.requests_of(cmd1.freelancer_id, "freelancer")] == [pending_id, paid]
    assert await store.requests_of(cmd1.freelancer_id, "client") == []


async def test_outbox_lease_retry_and_done(store):
    cmd, request_id = await open_request(store)
    claimed = [i for i in await store.claim_outbox(1000) if request_id in i.payload.decode()]
    assert len(claimed) == 1
    assert [i for i in await store.claim_outbox(1000) if request_id in i.payload.decode()] == []   # leased
    await store.outbox_retry(claimed[0].seq, 0.0, "contracts down")
    again = [i for i in await store.claim_outbox(1000) if i.seq == claimed[0].seq]
    assert again[0].attempts == 1
    await store.outbox_done(claimed[0].seq)
    await store.outbox_retry(claimed[0].seq, 0.0, "gone")
    assert [i for i in await store.claim_outbox(1000, lease=0.0) if i.seq == claimed[0].seq] == []


async def test_sql_outbox_claims_every_kind_in_one_go_and_keeps_the_rest_leased(store):
    """The relay's first claim of a scan leases the rows of every kind; the claim of the next kind
    hands out the kept ones (no other relay could take them meanwhile), in seq order."""
    cmd, request_id = await open_request(store, "40.00")
    await store.pay(request_id, cmd.client_id)
    outbox = SqlOutbox(store)
    events = [i for i in await outbox.claim("event", 1000) if request_id in i.item]
    assert [i.name for i in events] == ["payment.requested", "payment.paid"]
    assert int(events[0].key) < int(events[1].key)
    assert [i for i in await store.claim_outbox(1000, kind="call") if request_id in i.payload.decode()] == []
    calls = [i for i in await outbox.claim("call", 1000) if request_id in i.item]
    assert [(i.kind, i.name) for i in calls] == [("call", "contracts.MarkMilestonePaid")]
    await outbox.retry(calls[0], 0.0, "contracts down")
    again = [i for i in await outbox.claim("call", 1000) if i.key == calls[0].key]   # a new scan reads again
    assert [i.attempts for i in again] == [1]


async def test_remember_keeps_the_first_answer(store):
    user = await funded(store, "0")
    key = IdemKey(user, "wallet/deposit", "r")
    first = await store.remember(key, 400, b'{"status":400}')
    assert (first.status, first.replayed) == (400, False)
    assert (await store.deposit(user, D("5.00"), None, key)).body == b'{"status":400}'   # no effect
    assert await store.balance(user) == D("0.00")
    done = await store.deposit(user, D("5.00"), None, IdemKey(user, "wallet/deposit", "s"))
    later = await store.remember(IdemKey(user, "wallet/deposit", "s"), 415, b"{}")
    assert (later.status, later.body, later.replayed) == (200, done.body, True)


async def test_concurrent_relays_never_claim_a_row_twice(store):
    client = await funded(store, "0")
    for _ in range(30):
        await open_request(store, "1.00", client)
    claims: list[list[int]] = [[], []]

    async def relay(mine: list[int]) -> None:
        for _ in range(20):
            mine.extend(i.seq for i in await store.claim_outbox(3, lease=60))
    async with trio.open_nursery() as n:
        for mine in claims:
            n.start_soon(relay, mine)
    assert not set(claims[0]) & set(claims[1])
    assert len(claims[0]) + len(claims[1]) == len(set(claims[0]) | set(claims[1])) >= 30


async def test_conservation_after_random_operations(store):
    """Seeded random deposits, withdrawals, requests and pays, 8 at a time, on fresh users:
    their balances add up to their deposits minus withdrawals, and none is negative."""
    rnd = random.Random(7)
    users = [await funded(store, "0") for _ in range(5)]
    requests: list[tuple[str, str]] = []
    flows = {"in": D(0), "out": D(0)}
    limiter = trio.CapacityLimiter(8)

    async def op(kind: str, amount: Decimal, a: str, b: str) -> None:
        async with limiter:
            if kind == "deposit":
                assert (await store.deposit(a, amount, None)).status == 200
                flows["in"] += amount
            elif kind == "withdraw":
                if (await store.withdraw(a, amount, None)).status == 200:
                    flows["out"] += amount
            elif kind == "request" and a != b:
                cmd = CreatePaymentRequest(milestone_id=uid(), contract_id=uid(), client_id=a, freelancer_id=b,
                                           amount=amount)
                requests.append(((await store.create_request(cmd))[0], a))
            elif kind == "pay" and requests:
                request_id, payer = requests[rnd.randrange(len(requests))]
                assert (await store.pay(request_id, payer)).status in (200, 409)
    async with trio.open_nursery() as n:
        for _ in range(200):
            n.start_soon(op, rnd.choice(["deposit", "withdraw", "request", "pay", "pay"]),
                         D(rnd.randint(1, 9999)) / 100, rnd.choice(users), rnd.choice(users))
    balances = [await store.balance(u) for u in users]
    assert min(balances) >= 0 and sum(balances) == flows["in"] - flows["out"]
