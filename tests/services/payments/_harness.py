"""The payments service on the in-process transport against the real PostgreSQL, with a tiny fake
``contracts`` service (a test double of the peer) that records ``MarkMilestonePaid``."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import AsyncIterator

import trio

from workup.transport.envelope import SERVICE_CALLER, Caller, Event, reply_body
from workup.messages import payments as m
from workup.messages.contracts import MarkMilestonePaid
from workup.settings import Settings
from workup.transport import AmqpTransport, LocalTransport
from workup.runtime import Service, serve_service
from workup.services.payments import service as payments_service


class FakeContracts:
    def __init__(self) -> None:
        self.paid: list[MarkMilestonePaid] = []
        self.arrived = trio.Event()
        self.service = Service("contracts")

        @self.service.command(MarkMilestonePaid)
        async def mark(ctx, req: MarkMilestonePaid) -> None:
            self.paid.append(req)      # idempotent receiver: a repeat changes nothing
            self.arrived.set()

    def paid_for(self, milestone_id: str) -> list[MarkMilestonePaid]:
        """What arrived for one milestone (a shared test database may hold other tests' rows)."""
        return [p for p in self.paid if p.milestone_id == milestone_id]


@asynccontextmanager
async def amqp_transport(url: str, services: tuple[str, ...] = ("payments", "contracts"),
                         prefix: str | None = None) -> AsyncIterator[AmqpTransport]:
    """An AmqpTransport on a unique prefix; its queues and exchanges are deleted afterwards."""
    prefix = prefix or f"wtpay{uuid.uuid4().hex[:10]}"
    async with AmqpTransport.connect(url, prefix=prefix) as t:
        try:
            yield t
        finally:
            with trio.CancelScope(shield=True):
                await t.delete_topology(services)


async def start(nursery, service, settings, transport):
    return await nursery.start(lambda task_status: serve_service(
        service, settings, transport, concurrency=32, grace=2, control_secret="s", task_status=task_status))


class Watching:
    """Collects every event published on ``self.t``; waits for conditions (bounded)."""
    t: LocalTransport
    events: list[Event]

    async def _collect(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        events = self.t.subscribe()
        task_status.started()
        async for event in events:
            self.events.append(event)

    async def wait_for(self, predicate, timeout: float = 10.0) -> None:
        with trio.fail_after(timeout):
            while not predicate():
                await trio.sleep(0.02)


class Harness(Watching):
    def __init__(self, transport: LocalTransport, settings: Settings, contracts: FakeContracts) -> None:
        self.t, self.settings, self.contracts = transport, settings, contracts
        self.events: list[Event] = []

    async def call(self, req, caller: Caller):
        return await self.t.call(f"payments.{type(req).__name__}", req, caller=caller, timeout=15)

    async def ok(self, req, caller: Caller, status: int = 200):
        reply = await self.call(req, caller)
        assert reply.status == status, (reply.status, reply.body)
        return reply_body(reply)

    async def user(self, role: str = "CLIENT", funds: str = "0") -> Caller:
        caller = Caller(uuid.uuid4().hex, role)
        await self.ok(m.CreateWallet(user_id=caller.user_id, role=role), SERVICE_CALLER)
        if Decimal(funds):
            await self.ok(m.Deposit(amount=Decimal(funds)), caller)
        return caller

    async def request(self, client: Caller, freelancer: Caller, amount: str) -> tuple[str, m.CreatePaymentRequest]:
        cmd = m.CreatePaymentRequest(milestone_id=uuid.uuid4().hex, contract_id=uuid.uuid4().hex,
                                     client_id=client.user_id, freelancer_id=freelancer.user_id,
                                     amount=Decimal(amount))
        ref = await self.ok(cmd, SERVICE_CALLER, status=201)
        return ref["id"], cmd


@asynccontextmanager
async def running(settings: Settings, *, contracts: bool = True) -> AsyncIterator[Harness]:
    t = LocalTransport()
    fake = FakeContracts()
    async with trio.open_nursery() as n:
        h = Harness(t, settings, fake)
        await n.start(h._collect)
        if contracts:
            await start(n, fake.service, settings, t)
        h.instance = await start(n, payments_service, settings, t)
        h.nursery = n
        yield h
        n.cancel_scope.cancel()
