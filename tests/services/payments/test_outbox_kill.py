"""The outbox survives a process killed between the payment's commit and the publish: a fresh
instance delivers ``contracts.MarkMilestonePaid`` and ``payment.paid`` from the committed rows."""

from __future__ import annotations

import subprocess
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import trio

from workup.transport.envelope import SERVICE_CALLER, Caller, reply_body
from workup.messages import payments as m
from workup.settings import Settings
from workup.transport import DeadlineExceeded
from workup.testing import running_system

from ._harness import FakeContracts
from .conftest import fresh_database

CHILD = Path(__file__).with_name("_pay_then_die.py")


async def _read_line(stream, timeout: float = 30.0) -> str:
    with trio.fail_after(timeout):
        return (await trio.to_thread.run_sync(stream.readline)).decode().strip()


async def test_kill_between_commit_and_publish_loses_nothing(amqp_url, postgres_url, tmp_path):
    prefix = f"wtpaykill{uuid.uuid4().hex[:10]}"
    with fresh_database("kill") as pg:
        settings = Settings(data_dir=str(tmp_path), payments_postgres_url=pg, amqp_url=amqp_url)
        child = subprocess.Popen([sys.executable, str(CHILD), pg, amqp_url, prefix, str(tmp_path)],
                                 stdout=subprocess.PIPE, cwd=Path(__file__).parents[2])
        try:
            assert await _read_line(child.stdout) == "ready"
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
                assert await _read_line(child.stdout) == "committed 200"
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
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
