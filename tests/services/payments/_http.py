"""A payments system for HTTP tests on ``workup.testing.running_system``: the real gateway on a
free port, the payments service on the real PostgreSQL, and the fake ``contracts`` peer, either
embedded (in-process transport and cache, ``mode="embedded"``) or on the real RabbitMQ (unique
queue prefix) with the real Redis cache (``mode="distributed"``)."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import AsyncIterator

import httpx

from workup.messages import payments as m
from workup.settings import Settings
from workup.testing import Mode, running_system
from workup.transport.envelope import SERVICE_CALLER, reply_body

from ._harness import FakeContracts, Running

JWT_KEY = "payments-test-signing-key-" + "p" * 24
P = "/api/v1/payments"
ME = {"CLIENT": "clients/me", "FREELANCER": "freelancers/me"}


class User:
    def __init__(self, id: str, role: str, token: str) -> None:
        self.id, self.role = id, role
        self.auth = {"Authorization": f"Bearer {token}"}
        self.me = f"{P}/{ME.get(role, 'clients/me')}"


class PaymentsSystem(Running):
    @property
    def http(self) -> httpx.AsyncClient:
        return self.system.http

    def user(self, role: str = "CLIENT") -> User:
        id = uuid.uuid4().hex
        return User(id, role, self.system.token_for(id, role))

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
async def payments_system(pg_url: str, data_dir: str, mode: Mode = "embedded", *, amqp_url: str | None = None,
                          redis_url: str | None = None, contracts: bool = True) -> AsyncIterator[PaymentsSystem]:
    settings = Settings(data_dir=data_dir, payments_postgres_url=pg_url,
                        redis_url=redis_url if mode == "distributed" else None,
                        amqp_url=amqp_url if mode == "distributed" else None)
    fake = FakeContracts()
    async with running_system(mode, ["payments"], fakes={"contracts": fake.service} if contracts else {},
                              settings=settings, jwt_key=JWT_KEY, grace=2) as system:
        yield PaymentsSystem(system, fake)
