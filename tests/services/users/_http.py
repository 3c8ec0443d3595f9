"""Users systems for HTTP tests, both ``workup.testing.running_system`` behind the real gateway:

- :func:`system` — the real users and payments (and contracts) services, ``"embedded"``
  (in-process transport, SQLite) or ``"distributed"`` (RabbitMQ, Redis, FerretDB, PostgreSQL,
  Cassandra);
- :func:`users_system` — the users service with the fake payments/contracts peers of
  ``_fakes.py`` that record calls and let a test set balances or ACTIVE contracts (embedded;
  SQLite or FerretDB store).

Both give a :class:`UsersSystem`, whose ``register``/``admin`` answer the API's JSON as dicts.
"""

from __future__ import annotations

import itertools
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

import httpx

from workup.settings import Settings
from workup.testing import Mode, System, running_system

from ._env import mongo_url, require_mongo
from ._fakes import FakeContracts, FakePayments

JWT_KEY = "users-test-signing-key-" + "k" * 24
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password-1"
PASSWORD = "password123"
_seq = itertools.count()


def unique_email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}-{next(_seq)}@example.com"


class UsersSystem:
    def __init__(self, system: System, payments: FakePayments | None, contracts: FakeContracts | None) -> None:
        self.system, self.payments, self.contracts = system, payments, contracts
        self.http: httpx.AsyncClient = system.http
        self.settings: Settings = system.settings
        self.mode: Mode = system.mode
        self.admin_email = self.settings.admin_email or ADMIN_EMAIL
        self.admin_password = self.settings.admin_password or ADMIN_PASSWORD

    async def register(self, role: str = "CLIENT", email: str | None = None) -> dict:
        email = email or unique_email(role.lower())
        if role == "CLIENT":
            r = await self.http.post("/api/v1/users/clients/register",
                                     json={"email": email, "password": PASSWORD, "clientName": "Acme"})
        else:
            r = await self.http.post("/api/v1/users/freelancers/register",
                                     json={"email": email, "password": PASSWORD, "fullName": "Fay"})
        assert r.status_code == 201, r.text
        return {**r.json(), "email": email, "auth": {"Authorization": f"Bearer {r.json()['authToken']}"}}

    async def admin(self) -> dict:
        r = await self.http.post("/api/v1/users/login",
                                 json={"email": self.admin_email, "password": self.admin_password})
        assert r.status_code == 200, r.text
        return {**r.json(), "auth": {"Authorization": f"Bearer {r.json()['authToken']}"}}


@asynccontextmanager
async def users_system(data_dir: str, store: str = "sqlite", peers: str = "fake") -> AsyncIterator[UsersSystem]:
    """``peers="fake"``: recording doubles of payments and contracts; ``"none"``: no peers at all."""
    url = None
    if store == "mongo":
        url = mongo_url()
        require_mongo(url)
    settings = Settings(data_dir=data_dir, users_mongo_url=url, admin_email=ADMIN_EMAIL,
                        admin_password=ADMIN_PASSWORD)
    payments, contracts = (FakePayments(), FakeContracts()) if peers == "fake" else (None, None)
    fakes = {"payments": payments.service, "contracts": contracts.service} if payments and contracts else {}
    async with running_system("embedded", ["users"], fakes=fakes, settings=settings, jwt_key=JWT_KEY) as sys:
        yield UsersSystem(sys, payments, contracts)
        if url:
            from workup.services.users.mongo import MongoUserStore
            store_ = await MongoUserStore.open(url)
            await store_.drop()
            await store_.aclose()


@asynccontextmanager
async def system(mode: Mode, services: tuple[str, ...] = ("users", "payments")) -> AsyncIterator[UsersSystem]:
    """The real services; contracts only where a test needs it (distributed, it brings Cassandra in)."""
    async with running_system(mode, list(services)) as sys:
        yield UsersSystem(sys, None, None)
