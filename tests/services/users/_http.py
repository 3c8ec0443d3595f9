"""Users systems for HTTP tests, both behind the real gateway on a free port:

- :func:`system` — ``tests._system.running_system`` with the real users and payments (and
  contracts) services, ``"local"`` (in-process transport, SQLite) or ``"amqp"`` (RabbitMQ, Redis,
  FerretDB, PostgreSQL, Cassandra);
- :func:`users_system` — the users service with fake payments/contracts peers that record calls and
  let a test set balances or ACTIVE contracts (in-process transport; SQLite or FerretDB store).
"""

from __future__ import annotations

import itertools
import uuid
from contextlib import asynccontextmanager
from typing import AsyncIterator

import httpx
import trio

from workup.cache import open_cache
from workup.gateway import create_app, serve_app
from workup.settings import Settings
from workup.transport import LocalTransport
from workup.runtime import serve_service
from workup.services.users import service as users_service

from ._env import mongo_url, require_mongo
from ._fakes import FakeContracts, FakePayments

JWT_KEY = "users-test-signing-key-" + "k" * 24
ADMIN_EMAIL, ADMIN_PASSWORD = "admin@example.com", "admin-password-1"
PASSWORD = "password123"
_seq = itertools.count()


def unique_email(tag: str = "u") -> str:
    return f"{tag}-{uuid.uuid4().hex[:10]}-{next(_seq)}@example.com"


class UsersSystem:
    def __init__(self, http: httpx.AsyncClient, payments: FakePayments | None,
                 contracts: FakeContracts | None, settings: Settings) -> None:
        self.http, self.payments, self.contracts, self.settings = http, payments, contracts, settings
        self.admin_email = settings.admin_email or ADMIN_EMAIL
        self.admin_password = settings.admin_password or ADMIN_PASSWORD

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
    t = LocalTransport()
    payments, contracts = (FakePayments(), FakeContracts()) if peers == "fake" else (None, None)
    peer_services = [payments.service, contracts.service] if payments else []
    cache = open_cache(settings)  # the one the embedded users service fills
    async with trio.open_nursery() as n:
        for svc in (*peer_services, users_service):
            await n.start(lambda task_status, svc=svc: serve_service(
                svc, settings, t, concurrency=32, grace=1, control_secret="s", task_status=task_status))
        app = create_app(settings, t, cache, jwt_keys=JWT_KEY)
        base = await n.start(serve_app, app)
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            yield UsersSystem(http, payments, contracts, settings)
        if url:
            from workup.services.users.mongo import MongoUserStore
            store_ = await MongoUserStore.open(url)
            await store_.drop()
            await store_.aclose()
        n.cancel_scope.cancel()


@asynccontextmanager
async def system(mode: str, services: tuple[str, ...] = ("users", "payments")) -> AsyncIterator[UsersSystem]:
    """The real services (``tests._system.running_system``); contracts only where a test needs it
    (in "amqp" mode it brings Cassandra in)."""
    from tests._system import running_system
    async with running_system(mode, list(services)) as sys:
        yield UsersSystem(sys.http, None, None, sys.settings)
