"""A payments system for HTTP tests: the real gateway on a free port, the payments service on the
real PostgreSQL, and a fake ``contracts`` peer, either on the in-process transport with the
in-process cache (``mode="local"``) or on the real RabbitMQ (unique queue prefix) with the real
Redis cache (``mode="amqp"``)."""

from __future__ import annotations

import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from decimal import Decimal
from typing import AsyncIterator

import httpx
import trio

from workup.cache import open_cache
from workup.transport.envelope import SERVICE_CALLER, Event, reply_body
from workup.gateway import create_app, serve_app
from workup.messages import payments as m
from workup.settings import Settings
from workup.transport import LocalTransport
from workup.services.payments import service as payments_service

from ._harness import FakeContracts, Watching, amqp_transport, start

JWT_KEY = "payments-test-signing-key-" + "p" * 24
P = "/api/v1/payments"
ME = {"CLIENT": "clients/me", "FREELANCER": "freelancers/me"}


class User:
    def __init__(self, id: str, role: str, token: str) -> None:
        self.id, self.role = id, role
        self.auth = {"Authorization": f"Bearer {token}"}
        self.me = f"{P}/{ME.get(role, 'clients/me')}"


class PaymentsSystem(Watching):
    def __init__(self, http: httpx.AsyncClient, app, transport, contracts: FakeContracts, settings: Settings):
        self.http, self.app, self.t, self.contracts, self.settings = http, app, transport, contracts, settings
        self.events: list[Event] = []

    def user(self, role: str = "CLIENT") -> User:
        id = uuid.uuid4().hex
        return User(id, role, self.app.gw.tokens.issue(id, role))

    async def funded(self, role: str = "CLIENT", amount: str = "0") -> User:
        u = self.user(role)
        reply = await self.t.call("payments.CreateWallet", m.CreateWallet(user_id=u.id, role=role),
                                  caller=SERVICE_CALLER, timeout=10)
        reply_body(reply)
        if Decimal(amount):
            r = await self.http.post(f"{u.me}/wallet/deposit", json={"amount": float(amount)}, headers=u.auth)
            assert r.status_code == 200, r.text
        return u

    async def open_request(self, client: User, freelancer: User, amount: str) -> tuple[str, m.CreatePaymentRequest]:
        cmd = m.CreatePaymentRequest(milestone_id=uuid.uuid4().hex, contract_id=uuid.uuid4().hex,
                                     client_id=client.id, freelancer_id=freelancer.id, amount=Decimal(amount))
        reply = await self.t.call("payments.CreatePaymentRequest", cmd, caller=SERVICE_CALLER, timeout=10)
        return reply_body(reply)["id"], cmd


@asynccontextmanager
async def payments_system(pg_url: str, data_dir: str, mode: str = "local", *, amqp_url: str | None = None,
                          redis_url: str | None = None, contracts: bool = True) -> AsyncIterator[PaymentsSystem]:
    settings = Settings(data_dir=data_dir, payments_postgres_url=pg_url,
                        redis_url=redis_url if mode == "amqp" else None,
                        amqp_url=amqp_url if mode == "amqp" else None)
    fake = FakeContracts()
    async with AsyncExitStack() as stack:
        if mode == "amqp":
            transport = await stack.enter_async_context(amqp_transport(amqp_url))
        else:
            transport = LocalTransport()
        cache = open_cache(settings)
        async with trio.open_nursery() as n:
            app = create_app(settings, transport, cache, jwt_keys=JWT_KEY)
            base = await n.start(serve_app, app)
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                system = PaymentsSystem(http, app, transport, fake, settings)
                await n.start(system._collect)
                if contracts:
                    await start(n, fake.service, settings, transport)
                system.instance = await start(n, payments_service, settings, transport)
                system.nursery = n
                yield system
            n.cancel_scope.cancel()
