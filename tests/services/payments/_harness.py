"""The payments service on ``workup.testing.running_system`` against the real PostgreSQL, with a
fake ``contracts`` peer (``workup.testing.fake_service``) that records ``MarkMilestonePaid``.

:class:`Harness` calls payments' commands by request struct (``h.ok(m.Deposit(...), caller)``)."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import AsyncIterator, Callable

import trio

from workup.messages import payments as m
from workup.messages.contracts import MarkMilestonePaid
from workup.runtime import Context, Instance
from workup.settings import Settings
from workup.testing import System, fake_service, running_system
from workup.transport import AmqpTransport, LocalTransport
from workup.transport.envelope import SERVICE_CALLER, Caller, Event


class FakeContracts:
    def __init__(self) -> None:
        self.paid: list[MarkMilestonePaid] = []
        self.arrived = trio.Event()
        self.service = fake_service("contracts", MarkMilestonePaid=self._mark)

    async def _mark(self, ctx: Context[None], req: MarkMilestonePaid) -> None:
        self.paid.append(req)      # idempotent receiver: a repeat changes nothing
        self.arrived.set()

    def paid_for(self, milestone_id: str) -> list[MarkMilestonePaid]:
        """What arrived for one milestone (a shared test database may hold other tests' rows)."""
        return [p for p in self.paid if p.milestone_id == milestone_id]


class Running:
    """A running system with payments and the fake contracts: what both harnesses share."""

    def __init__(self, system: System, contracts: FakeContracts) -> None:
        self.system, self.contracts = system, contracts

    @property
    def t(self) -> LocalTransport | AmqpTransport:
        return self.system.transport

    @property
    def settings(self) -> Settings:
        return self.system.settings

    @property
    def events(self) -> list[Event]:
        return self.system.events

    @property
    def instance(self) -> Instance:
        return self.system.instances["payments"]

    @property
    def nursery(self) -> trio.Nursery:
        return self.system.nursery

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> None:
        await self.system.wait_for(predicate, timeout)


class Harness(Running):
    def __init__(self, system: System, contracts: FakeContracts) -> None:
        super().__init__(system, contracts)
        payments = system.hook("payments", timeout=15)
        self.call, self.ok = payments.call, payments.ok

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
        assert isinstance(ref, dict)
        return ref["id"], cmd


@asynccontextmanager
async def running(settings: Settings, *, contracts: bool = True) -> AsyncIterator[Harness]:
    fake = FakeContracts()
    async with running_system("embedded", ["payments"], fakes={"contracts": fake.service} if contracts else {},
                              settings=settings, gateway=False, grace=2) as system:
        yield Harness(system, fake)
