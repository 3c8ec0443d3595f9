"""The whole system for end-to-end tests: service instances + the real gateway on a free port.

``mode="local"``: the in-process transport and cache, SQLite stores in a temporary directory.
``mode="amqp"``: the real RabbitMQ (a unique queue/exchange prefix), the real Redis cache and the
real stores from the ``WORKUP_TEST_*`` variables, each in a database/keyspace of its own that is
dropped afterwards, so parallel runs never meet. A server that does not answer fails the test.

    async with running_system("amqp", ["users", "payments"]) as sys:
        client = await sys.register_client()
        r = await sys.http.get("/api/v1/users/me", headers=client.auth)
"""

from __future__ import annotations

import os
import secrets
import socket
import tempfile
import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio

from workup.cache import open_cache
from workup.transport.envelope import Event
from workup.gateway import create_app, serve_app
from workup.settings import Settings
from workup.transport import LocalTransport
from workup.runtime import load_service, serve_service

__all__ = ["running_system", "System", "Account", "ALL_SERVICES", "PASSWORD", "unique_email", "env_value",
           "delete_topology"]

ALL_SERVICES = ("users", "jobs", "contracts", "payments")
PASSWORD = "password-123"
JWT_KEY = "system-test-signing-key-" + "s" * 24
CONTROL_KEY = "system-test-control-key-" + "c" * 24

_DEFAULTS = {
    "WORKUP_TEST_AMQP_URL": "amqp://guest:guest@127.0.0.1:5672/",
    "WORKUP_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
    "WORKUP_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
    "WORKUP_TEST_MONGO_URL": "mongodb://127.0.0.1:27017/",
    "WORKUP_TEST_CASSANDRA_HOSTS": "127.0.0.1:9042",
}


def env_value(name: str) -> str:
    return os.environ.get(name) or _DEFAULTS[name]


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


def _require(host: str, port: int, what: str, variable: str) -> None:
    """Fail (never skip) with a clear message when a server does not accept connections."""
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        raise AssertionError(f"{what} not reachable at {host}:{port} ({exc}); start it with "
                             f"`bash ops/dev/services up` or set {variable}") from None


def _require_url(url: str, default_port: int, what: str, variable: str) -> None:
    parts = urlsplit(url)
    _require(parts.hostname or "127.0.0.1", parts.port or default_port, what, variable)


@dataclass
class Account:
    id: str
    role: str
    token: str
    email: str = ""
    password: str = PASSWORD

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class System:
    http: httpx.AsyncClient
    base_url: str
    app: Any
    transport: Any
    settings: Settings
    cache: Any
    events: list[Event] = field(default_factory=list)

    async def _register(self, path: str, role: str, body: dict[str, Any]) -> Account:
        r = await self.http.post(path, json=body)
        assert r.status_code == 201, f"register {role}: {r.status_code} {r.text}"
        answer = r.json()
        assert answer["userType"] == role
        return Account(answer["userId"], role, answer["authToken"], body["email"], body["password"])

    async def register_client(self, **fields: Any) -> Account:
        body = {"email": unique_email("client"), "password": PASSWORD, "clientName": "Acme Ltd", **fields}
        return await self._register("/api/v1/users/clients/register", "CLIENT", body)

    async def register_freelancer(self, **fields: Any) -> Account:
        body = {"email": unique_email("freelancer"), "password": PASSWORD, "fullName": "Fay Lancer", **fields}
        return await self._register("/api/v1/users/freelancers/register", "FREELANCER", body)

    async def admin(self) -> Account:
        """The admin ensured at start-up from the settings (logs in through the API)."""
        s = self.settings
        r = await self.http.post("/api/v1/users/login", json={"email": s.admin_email, "password": s.admin_password})
        assert r.status_code == 200, f"admin login: {r.status_code} {r.text}"
        answer = r.json()
        return Account(answer["userId"], "ADMIN", answer["authToken"], s.admin_email or "", s.admin_password or "")

    async def admin_token(self) -> str:
        return (await self.admin()).token

    def token_for(self, user_id: str, role: str) -> str:
        """A valid token for any id (for routes whose account need not exist)."""
        return self.app.gw.tokens.issue(user_id, role)

    def events_of(self, type: str) -> list[Event]:
        return [e for e in self.events if e.type == type]

    async def wait_for_event(self, type: str, *, timeout: float = 10, **data: str) -> Event:
        with trio.move_on_after(timeout):
            while True:
                for e in self.events:
                    if e.type == type and all(e.data.get(k) == v for k, v in data.items()):
                        return e
                await trio.sleep(0.02)
        raise AssertionError(f"no {type} event with {data} within {timeout}s")


# --- stores in amqp mode: one database / keyspace per system, dropped afterwards ----------------

def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def _postgres_database(stack: AsyncExitStack, tag: str) -> str:
    import psycopg
    from psycopg import sql
    base = env_value("WORKUP_TEST_POSTGRES_URL")
    _require_url(base, 5432, "PostgreSQL", "WORKUP_TEST_POSTGRES_URL")
    name = f"workup_sys_{tag}"

    def admin(statement: Any) -> None:
        with psycopg.connect(base, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)

    await trio.to_thread.run_sync(admin, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    async def drop() -> None:
        with trio.move_on_after(30):
            await trio.to_thread.run_sync(
                admin, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    stack.push_async_callback(drop)
    return _with_database(base, name)


async def _mongo_database(stack: AsyncExitStack, tag: str) -> str:
    import pymongo
    base = env_value("WORKUP_TEST_MONGO_URL")
    _require_url(base, 27017, "MongoDB-wire server (FerretDB)", "WORKUP_TEST_MONGO_URL")
    name = f"workup_sys_{tag}"

    def drop_sync() -> None:
        client = pymongo.MongoClient(base, serverSelectionTimeoutMS=5000)
        try:
            client.drop_database(name)
        finally:
            client.close()

    async def drop() -> None:
        with trio.move_on_after(30):
            await trio.to_thread.run_sync(drop_sync)
    stack.push_async_callback(drop)
    return _with_database(base, name)


async def _cassandra_keyspaces(stack: AsyncExitStack, tag: str, services: Iterable[str]) -> tuple[str, str]:
    hosts = env_value("WORKUP_TEST_CASSANDRA_HOSTS")
    host, _, port = hosts.split(",")[0].strip().rpartition(":")
    _require(host or "127.0.0.1", int(port or 9042), "Cassandra", "WORKUP_TEST_CASSANDRA_HOSTS")
    prefix = f"sys{tag}"
    keyspaces = [f"{prefix}_{s}" for s in services if s in ("jobs", "contracts")]

    def drop_sync() -> None:
        from cassandra.cluster import Cluster
        points = Settings(cassandra_hosts=hosts).cassandra_contact_points()
        cluster = Cluster([h for h, _ in points], port=points[0][1])
        try:
            session = cluster.connect()
            for ks in keyspaces:
                session.execute(f"DROP KEYSPACE IF EXISTS {ks}", timeout=60)
        finally:
            cluster.shutdown()

    async def drop() -> None:
        with trio.move_on_after(60):
            await trio.to_thread.run_sync(drop_sync)
    if keyspaces:
        stack.push_async_callback(drop)
    return hosts, prefix


async def delete_topology(transport: Any, prefix: str, names: list[str]) -> None:
    """Remove this system's queues and exchanges from the shared broker (best effort, bounded)."""
    assert transport.prefix == prefix
    await transport.delete_topology(names)


async def _settings(mode: str, services: list[str], data_dir: str, stack: AsyncExitStack) -> Settings:
    admin = {
        "admin_email": os.environ.get("WORKUP_ADMIN_EMAIL") or unique_email("admin"),
        "admin_password": os.environ.get("WORKUP_ADMIN_PASSWORD") or "admin-" + secrets.token_hex(8),
    }
    if mode == "local":
        return Settings(data_dir=data_dir, jwt_key=JWT_KEY, control_key=CONTROL_KEY, **admin)
    tag = secrets.token_hex(5)
    stores: dict[str, Any] = {}
    if "users" in services:
        stores["users_mongo_url"] = await _mongo_database(stack, tag)
    if "payments" in services:
        stores["payments_postgres_url"] = await _postgres_database(stack, tag)
    if "jobs" in services or "contracts" in services:
        hosts, prefix = await _cassandra_keyspaces(stack, tag, services)
        stores.update(cassandra_hosts=hosts, cassandra_keyspace_prefix=prefix)
    amqp_url = env_value("WORKUP_TEST_AMQP_URL")
    redis_url = env_value("WORKUP_TEST_REDIS_URL")
    _require_url(amqp_url, 5672, "RabbitMQ", "WORKUP_TEST_AMQP_URL")
    _require_url(redis_url, 6379, "Redis", "WORKUP_TEST_REDIS_URL")
    return Settings(data_dir=data_dir, amqp_url=amqp_url, redis_url=redis_url, jwt_key=JWT_KEY,
                    control_key=CONTROL_KEY, **stores, **admin)


@asynccontextmanager
async def running_system(mode: str = "local", services: Iterable[str] = ALL_SERVICES, *,
                         concurrency: int = 32, request_timeout: float = 10.0) -> AsyncIterator[System]:
    if mode not in ("local", "amqp"):
        raise ValueError(f"mode must be 'local' or 'amqp', got {mode!r}")
    names = list(services)
    unknown = set(names) - set(ALL_SERVICES)
    if unknown:
        raise ValueError(f"unknown services {sorted(unknown)}")
    with tempfile.TemporaryDirectory(prefix="workup-sys-") as data_dir:
        async with AsyncExitStack() as stack:
            settings = await _settings(mode, names, data_dir, stack)
            if mode == "amqp":
                from workup.transport import AmqpTransport
                prefix = f"wsys{secrets.token_hex(5)}"
                transport = await stack.enter_async_context(AmqpTransport.connect(settings.amqp_url, prefix=prefix))
                stack.push_async_callback(delete_topology, transport, prefix, names)
            else:
                transport = LocalTransport()
            cache = open_cache(settings)
            async with trio.open_nursery() as nursery:
                system_events: list[Event] = []

                async def collect(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                    events = transport.subscribe()
                    task_status.started()
                    async for event in events:
                        system_events.append(event)

                await nursery.start(collect)

                async def start(name: str) -> None:
                    await nursery.start(lambda task_status: serve_service(
                        load_service(name), settings, transport, concurrency=concurrency, grace=1.0,
                        control_secret=CONTROL_KEY, task_status=task_status))

                async with trio.open_nursery() as starting:   # in parallel: schema set-up is slow
                    for name in names:
                        starting.start_soon(start, name)
                app = create_app(settings, transport, cache, jwt_keys=JWT_KEY, request_timeout=request_timeout)
                base_url = await nursery.start(serve_app, app)
                with trio.fail_after(30):   # notifications are live before the test starts
                    await app.gw.hub.ready.wait()
                async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
                    yield System(http, base_url, app, transport, settings, cache, system_events)
                nursery.cancel_scope.cancel()
