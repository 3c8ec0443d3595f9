"""The outbox rows a command writes are delivered by its own handler after the reply and forgotten
in one statement (``workup/services/payments/relay.py``); the relay is only the safety net: rows
are written held, so no relay claims them while their writer may still deliver them, and a
delivery that fails is retried by the relay when due. Also the other cut of the transactions' round
trips: a deposit's guarded update sent with the idempotency key's insert still moves money once."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest
import trio

from workup.messages import payments as m
from workup.services.payments.ops import IdemKey
from workup.settings import Settings

from ._harness import FakeContracts, running
from .test_store_contract import funded, open_request

D = Decimal


def _mine(items, request_id):
    return [i for i in items if request_id in i.payload.decode()]


async def test_held_rows_are_their_writers_until_the_hold_is_over(store):
    client = await funded(store, "0")
    cmd = m.CreatePaymentRequest(milestone_id=uuid.uuid4().hex, contract_id=uuid.uuid4().hex, client_id=client,
                                 freelancer_id=uuid.uuid4().hex, amount=D("5.00"))
    request_id, written = await store.open_request(cmd, hold=0.5)
    assert written is not None
    [row] = written.items()
    assert (row.kind, row.name, row.attempts) == ("event", "payment.requested", 0)
    assert _mine(await store.claim_outbox(1000, lease=0.0), request_id) == []          # held
    assert await store.open_request(cmd, hold=0.5) == (request_id, None)             # nothing written twice
    await trio.sleep(0.6)
    assert [i.seq for i in _mine(await store.claim_outbox(1000, lease=0.0), request_id)] == [row.seq]


async def test_a_pay_returns_its_rows_in_order_and_they_are_forgotten_together(store):
    cmd, request_id = await open_request(store, "40.00")
    await store.claim_outbox(1000)                      # the request's own row: not this test's
    out = await store.pay(request_id, cmd.client_id, hold=60.0)
    assert out.status == 200 and out.outbox is not None
    rows = out.outbox.items()
    assert [(i.kind, i.name) for i in rows] == [("call", "contracts.MarkMilestonePaid"), ("event", "payment.paid")]
    assert rows[0].seq < rows[1].seq and all(request_id in i.payload.decode() for i in rows)
    assert _mine(await store.claim_outbox(1000, lease=0.0), request_id) == []          # held for the payer
    await store.outbox_forget([i.seq for i in rows])
    for i in rows:                                      # a retry of a row still there would make it due
        await store.outbox_retry(i.seq, 0.0, "gone?")
    assert _mine(await store.claim_outbox(1000, lease=0.0), request_id) == []


def _outbox_rows(pg_url: str, request_id: str) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox WHERE position(%s in convert_from(payload, 'UTF8')) > 0",
                           (request_id,)).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("store_kind", ["postgres", "sqlite"])
async def test_the_payer_delivers_its_rows_after_the_reply_without_the_relay(store_kind, pg_url, tmp_path):
    pg = {"payments_postgres_url": pg_url} if store_kind == "postgres" else {}
    settings = Settings(data_dir=str(tmp_path), **pg)
    async with running(settings) as h:
        store = h.instance.rt.deps.store
        claims = []
        real_claim = store.claim_outbox

        async def counted(*args, **kwargs):
            claims.append(args)
            return await real_claim(*args, **kwargs)
        await trio.sleep(0.2)                              # the relay's start-up scan is over
        store.claim_outbox = counted
        client, freelancer = await h.user("CLIENT", "10"), await h.user("FREELANCER")
        request_id, cmd = await h.request(client, freelancer, "10")
        await h.ok(m.PayRequest(id=request_id), client)
        # well within the hold (12 s): only the handler could have delivered them
        await h.wait_for(lambda: h.contracts.paid_for(cmd.milestone_id), timeout=5)
        await h.wait_for(lambda: any(e.type == "payment.paid" and e.data["paymentRequestId"] == request_id
                                     for e in h.events), timeout=5)
        assert [e.type for e in h.events if e.data.get("paymentRequestId") == request_id] == [
            "payment.requested", "payment.paid"]
        assert claims == []                               # no relay scan for them
        if store_kind == "postgres":
            with trio.fail_after(5):
                while await trio.to_thread.run_sync(_outbox_rows, pg_url, request_id):
                    await trio.sleep(0.05)


async def test_a_failed_delivery_is_retried_by_the_relay_when_due(pg_url, tmp_path):
    """contracts is down when the payer delivers: the call is retried (0.5 s, doubling) by the
    relay, woken when it is due, well before the hold or the slow poll would bring it."""
    async with running(Settings(data_dir=str(tmp_path), payments_postgres_url=pg_url), contracts=False) as h:
        client, freelancer = await h.user("CLIENT", "10"), await h.user("FREELANCER")
        request_id, cmd = await h.request(client, freelancer, "10")
        await h.ok(m.PayRequest(id=request_id), client)
        await trio.sleep(0.3)                            # the payer's attempt has failed by now
        fake = FakeContracts()
        started = trio.current_time()
        await h.system.start("contracts", fake.service)
        await h.wait_for(lambda: fake.paid_for(cmd.milestone_id), timeout=8)
        assert trio.current_time() - started < 8
        await trio.sleep(0.5)
        assert [p.payment_request_id for p in fake.paid_for(cmd.milestone_id)] == [request_id]
        assert [e.type for e in h.events if e.data.get("paymentRequestId") == request_id] == [
            "payment.requested", "payment.paid"]                     # the events went out once
        assert await trio.to_thread.run_sync(_outbox_rows, pg_url, request_id) == 0


async def test_a_create_request_s_event_goes_out_from_its_handler(pg_url, tmp_path):
    async with running(Settings(data_dir=str(tmp_path), payments_postgres_url=pg_url)) as h:
        client, freelancer = await h.user("CLIENT"), await h.user("FREELANCER")
        request_id, _ = await h.request(client, freelancer, "3")
        await h.wait_for(lambda: any(e.data.get("paymentRequestId") == request_id for e in h.events), timeout=5)
        with trio.fail_after(5):
            while await trio.to_thread.run_sync(_outbox_rows, pg_url, request_id):
                await trio.sleep(0.05)


@pytest.mark.parametrize("op", ["deposit", "withdraw"])
async def test_concurrent_retries_of_one_key_move_the_money_once(store, op):
    """The guarded update travels with the key's insert (one round trip) and applies only in the
    transaction whose insert is fresh: ten concurrent calls with one key, one effect, one answer."""
    user = await funded(store, "50.00")
    key = IdemKey(user, f"wallet/{op}", uuid.uuid4().hex)
    answers = []

    async def one() -> None:
        answers.append(await getattr(store, op)(user, D("7.00"), None, key))
    async with trio.open_nursery() as n:
        for _ in range(10):
            n.start_soon(one)
    assert {(a.status, a.body) for a in answers} == {(200, answers[0].body)}
    assert sum(not a.replayed for a in answers) == 1
    assert await store.balance(user) == (D("57.00") if op == "deposit" else D("43.00"))
    assert len(await store.wallet_transactions(user)) == 2          # the seed and this one
