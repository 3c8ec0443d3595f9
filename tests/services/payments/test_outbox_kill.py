"""A payments process killed between an operation's commit and its reply: the outbox survives (a
fresh instance delivers ``contracts.MarkMilestonePaid`` and ``payment.paid`` from the committed
rows), and the redelivered command, which carries no Idempotency-Key, is applied once (the inbox
row keyed by its request id answers it with the first answer)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import msgspec
import pytest
import trio

from workup.transport.envelope import SERVICE_CALLER, Caller, reply_body
from workup.messages import payments as m
from workup.settings import Settings
from workup.transport import DeadlineExceeded
from workup.testing import running_system

from ._harness import FakeContracts
from .conftest import fresh_database
from tests.services._dying import dying_child, read_line

CHILD = "tests.services.payments._pay_then_die"   # run as a module from the repository root


async def test_kill_between_commit_and_publish_loses_nothing(amqp_url, postgres_url, tmp_path):
    prefix = f"wtpaykill{uuid.uuid4().hex[:10]}"
    with fresh_database("kill") as pg, dying_child(CHILD, pg, amqp_url, prefix, str(tmp_path), "pay") as child:
        settings = Settings(data_dir=str(tmp_path), payments_postgres_url=pg, amqp_url=amqp_url)
        assert await read_line(child.stdout) == "ready"
        async with running_system("distributed", [], settings=settings, prefix=prefix, gateway=False) as system:
            system.started.add("payments")   # the child declared its queues: they go at the end too

            async def call(req, caller, timeout=10.0):
                return reply_body(await system.call(f"payments.{type(req).__name__}", req, caller,
                                                 timeout=timeout))
            client, freelancer = Caller(uuid.uuid4().hex, "CLIENT"), Caller(uuid.uuid4().hex, "FREELANCER")
            await call(m.Deposit(amount=Decimal("80")), client)
            milestone = uuid.uuid4().hex
            ref = await call(m.CreatePaymentRequest(milestone_id=milestone, contract_id=uuid.uuid4().hex,
                                                    client_id=client.user_id, freelancer_id=freelancer.user_id,
                                                    amount=Decimal("80")), SERVICE_CALLER)
            try:
                await call(m.PayRequest(id=ref["id"]), client, timeout=3.0)
                raise AssertionError("the killed instance answered")
            except DeadlineExceeded:
                pass
            assert await read_line(child.stdout) == "committed 200"
            assert await trio.to_thread.run_sync(child.wait) == -9

            # a fresh instance (with the relay) and the contracts peer come up
            fake = FakeContracts()
            await system.start("contracts", fake.service)
            await system.start("payments")
            await system.wait_for(lambda: fake.paid and any(e.type == "payment.paid" for e in system.events),
                               timeout=20)
            assert [(p.milestone_id, p.payment_request_id) for p in fake.paid] == [(milestone, ref["id"])]
            got = await call(m.GetPaymentRequest(id=ref["id"]), client)
            assert got["status"] == "PAID"
            assert await call(m.GetMyWallet(), freelancer) == {"balance": 80}


@pytest.mark.parametrize("op", ["deposit", "withdraw", "pay"])
async def test_a_command_redelivered_after_a_kill_is_applied_once(op, amqp_url, postgres_url, tmp_path):
    """No Idempotency-Key: the worker dies after the commit, before the reply and the ack; the
    broker redelivers the command (same request id) to a fresh instance, which answers the
    waiting caller with the first answer and writes nothing more."""
    prefix = f"wtpayonce{uuid.uuid4().hex[:10]}"
    with fresh_database("once") as pg, dying_child(CHILD, pg, amqp_url, prefix, str(tmp_path), op) as child:
        settings = Settings(data_dir=str(tmp_path), payments_postgres_url=pg, amqp_url=amqp_url)
        assert await read_line(child.stdout) == "ready"
        async with running_system("distributed", [], settings=settings, prefix=prefix, gateway=False) as system:
            system.started.add("payments")

            async def call(req, caller, timeout=10.0, as_=Any):
                return reply_body(await system.call(f"payments.{type(req).__name__}", req, caller,
                                                 timeout=timeout), as_)
            client, freelancer = Caller(uuid.uuid4().hex, "CLIENT"), Caller(uuid.uuid4().hex, "FREELANCER")
            if op == "deposit":
                command, expected = m.Deposit(amount=Decimal("49.51")), Decimal("49.51")
            else:
                await call(m.Deposit(amount=Decimal("100")), client)
            if op == "withdraw":
                command, expected = m.Withdraw(amount=Decimal("22.66")), Decimal("77.34")
            if op == "pay":
                ref = await call(m.CreatePaymentRequest(milestone_id=uuid.uuid4().hex, contract_id=uuid.uuid4().hex,
                                                        client_id=client.user_id, freelancer_id=freelancer.user_id,
                                                        amount=Decimal("23.98")), SERVICE_CALLER)
                command, expected = m.PayRequest(id=ref["id"]), Decimal("76.02")

            answers: list[object] = []

            async def first_call() -> None:   # waits through the kill for the redelivery's answer
                answers.append(await call(command, client, timeout=60.0))

            async with trio.open_nursery() as n:
                n.start_soon(first_call)
                assert await read_line(child.stdout) == "committed 200"
                first = msgspec.json.decode((await read_line(child.stdout)).removeprefix("body "))
                assert await trio.to_thread.run_sync(child.wait) == -9
                await system.start("contracts", FakeContracts().service)
                await system.start("payments")

            assert answers == [first]
            assert await call(m.GetMyWallet(), client) == {"balance": float(expected)}
            ledger = await call(m.ListWalletTransactions(), client, as_=list[m.WalletTransaction])
            # one row for the operation (and one for the setup deposit before a withdraw or a pay)
            assert sorted(e.transaction_type for e in ledger) == (["CREDIT"] if op == "deposit" else ["CREDIT", "DEBIT"])
            if op == "pay":
                assert len(await call(m.ListMyTransactions(), client)) == 1
                assert await call(m.GetMyWallet(), freelancer) == {"balance": float(Decimal("23.98"))}
