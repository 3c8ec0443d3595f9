"""Test tools shipped with WorkUp: a running system with chosen services real and others faked.

In the manner of ``nameko.testing``: the services under test run as they do in production, and the
peers that are out of a test's scope are replaced by small fakes whose commands are plain handlers.

    async def create(ctx: Context[None], req: CreateWallet) -> WalletBalance:
        return WalletBalance(balance=Decimal("0"))

    async with running_system("embedded", ["users"],
                              fakes={"payments": fake_service("payments", CreateWallet=create)}) as sys:
        client = await sys.register_client()                  # through the real gateway
        r = await sys.http.get("/api/v1/users/me", headers=client.auth)
        body = await sys.ok("users.GetMe", GetMe(), Caller(client.id, "CLIENT"))   # on the bus

``mode="embedded"``: the in-process transport and cache and SQLite stores in a temporary
directory, as ``workup up`` runs. ``mode="distributed"``: the real RabbitMQ (a unique name prefix
whose queues and exchanges are deleted afterwards), the real Redis cache and the real stores, each
in a database or keyspace of its own that is dropped afterwards, so parallel runs never meet. The
servers are found from the ``WORKUP_TEST_*`` variables (loopback defaults, as
``ops/dev/services up`` starts them); one that does not answer fails the test, it never skips.

A caller that passes ``settings`` provisions the stores itself: they are used as given.
``tests/test_testing.py`` shows each feature; ``docs/testing.md`` says when to use what.
"""

from __future__ import annotations

import inspect
import os
import secrets
import socket
import tempfile
import typing
import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from importlib import import_module
from typing import TYPE_CHECKING, AsyncIterator, Awaitable, Callable, Iterable, Literal, Mapping, Never
from urllib.parse import urlsplit, urlunsplit

import httpx
import msgspec
import trio

from .cache import Cache, open_cache
from .runtime import Context, Deps, Instance, Service, load_service, serve_service
from .settings import Settings
from .transport import LocalTransport
from .transport.accounts import dev_url
from .transport.envelope import Caller, Event, Reply
from .transport.identity import identity_env   # the keys a test shares with the processes it starts

if TYPE_CHECKING:
    from .gateway import GatewayApp
    from .transport.rabbitmq import AmqpTransport

__all__ = ["running_system", "fake_service", "System", "ServiceHook", "Account", "Mode", "FakeHandler",
           "ALL_SERVICES", "PASSWORD", "JWT_KEY", "unique_email", "env_value", "require_server",
           "request_type_of", "identity_env"]

Mode = Literal["embedded", "distributed"]
ALL_SERVICES = ("users", "jobs", "contracts", "payments")
PASSWORD = "password-123"
JWT_KEY = "workup-testing-signing-key-" + "s" * 24
CONTROL_KEY = "workup-testing-control-key-" + "c" * 24

# A fake's handler: ``async def handler(ctx, req: CreateWallet) -> WalletBalance``. ``Never`` as the
# request type accepts a handler of any request struct (parameters are contravariant).
FakeHandler = Callable[[Context[None], Never], Awaitable[object]]

_DEFAULTS = {
    "WORKUP_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
    "WORKUP_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
    "WORKUP_TEST_MONGO_URL": "mongodb://127.0.0.1:27017/",
    "WORKUP_TEST_CASSANDRA_HOSTS": "127.0.0.1:9042",
}


def env_value(name: str) -> str:
    """A ``WORKUP_TEST_*`` server address, or its loopback default (for RabbitMQ: the dev node's
    test account, ``workup-test`` on vhost ``workup``, as ``ops/dev/services up`` creates it)."""
    if name == "WORKUP_TEST_AMQP_URL" and not os.environ.get(name):
        return dev_url("test")
    return os.environ.get(name) or _DEFAULTS[name]


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{uuid.uuid4().hex[:12]}@example.com"


# --- fakes ----------------------------------------------------------------------------------------

def request_type_of(service: str, command: str, handler: FakeHandler) -> type:
    """The request struct of ``command``: the annotation of the handler's request parameter when it
    resolves to a msgspec struct, else ``workup.messages.<service>.<command>``."""
    params = list(inspect.signature(handler).parameters)
    hint: object = None
    if len(params) >= 2:
        try:
            hint = typing.get_type_hints(handler).get(params[1])
        except NameError:   # a name local to the test function: fall back to the message module
            hint = None
    if isinstance(hint, type) and issubclass(hint, msgspec.Struct):
        if hint.__name__ != command:
            raise ValueError(f"handler for {command} takes {hint.__name__}")
        return hint
    try:
        found = getattr(import_module(f"workup.messages.{service}"), command)
    except (ModuleNotFoundError, AttributeError):
        raise ValueError(f"no request struct {command!r} for a fake {service}: annotate the handler's "
                         f"request parameter") from None
    if not (isinstance(found, type) and issubclass(found, msgspec.Struct)):
        raise ValueError(f"workup.messages.{service}.{command} is not a request struct")
    return found


def fake_service(name: str, /, *, status: Mapping[str, int] | None = None,
                 **handlers: FakeHandler) -> Service[None]:
    """A :class:`Service` named ``name`` whose commands are ``handlers`` (keyword = the request
    struct's name, e.g. ``CreateWallet=handler``); ``status`` gives a command's success status
    where it is not 200 (``status={"CreatePaymentRequest": 201}``). It has no deps."""
    service: Service[None] = Service(name)
    for command, handler in handlers.items():
        service.command(request_type_of(name, command, handler),
                        status=(status or {}).get(command, 200))(handler)
    unknown = set(status or {}) - set(handlers)
    if unknown:
        raise ValueError(f"status given for commands without a handler: {sorted(unknown)}")
    return service


# --- the running system ---------------------------------------------------------------------------

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
    """A running system: its transport, the events published on it, a caller for commands, and
    the real gateway (``http``, ``app``) unless it was started with ``gateway=False``."""

    mode: Mode
    settings: Settings
    transport: LocalTransport | AmqpTransport
    cache: Cache
    nursery: trio.Nursery
    control_secret: str
    concurrency: int
    grace: float
    jwt_key: str
    events: list[Event] = field(default_factory=list)
    fakes: dict[str, Service[None]] = field(default_factory=dict)   # what start(name) runs for name
    instances: dict[str, Instance] = field(default_factory=dict)
    started: set[str] = field(default_factory=set)   # every name started (distributed: deleted at the end)
    app: GatewayApp | None = None
    base_url: str | None = None
    _http: httpx.AsyncClient | None = None
    _scopes: dict[str, trio.CancelScope] = field(default_factory=dict)

    @property
    def http(self) -> httpx.AsyncClient:
        """A client of the real gateway (``base_url``)."""
        if self._http is None:
            raise RuntimeError("this system runs no gateway (running_system(..., gateway=False))")
        return self._http

    # services --------------------------------------------------------------------------------

    async def start(self, name: str, service: Service[Deps | None] | None = None) -> Instance:
        """Start one more instance of ``service`` (default: ``fakes[name]`` if there is one, else
        the real service ``name``) in a cancel scope of its own; returns once it consumes."""
        svc = service if service is not None else self.fakes.get(name) or load_service(name)
        self.started.add(name)

        async def run(task_status: trio.TaskStatus[Instance]) -> None:
            with trio.CancelScope() as scope:
                self._scopes[name] = scope
                await serve_service(svc, self.settings, self.transport, concurrency=self.concurrency,
                                    grace=self.grace, control_secret=self.control_secret,
                                    task_status=task_status)

        instance: Instance = await self.nursery.start(run)
        self.instances[name] = instance
        return instance

    def kill(self, name: str) -> None:
        """Stop the last instance started as ``name`` at once, wherever it is (as a killed process)."""
        self._scopes.pop(name).cancel()
        self.instances.pop(name, None)

    # commands (the entrypoint hook) ----------------------------------------------------------

    async def call(self, command: str, request: msgspec.Struct, caller: Caller | None = None, *,
                   timeout: float = 20.0, request_id: str | None = None) -> Reply:
        """Send ``command`` (``"jobs.CreateJob"``) on the transport as ``caller`` (default: nobody)."""
        return await self.transport.call(command, request, caller=caller or Caller(None, None),
                                         timeout=timeout, request_id=request_id)

    async def answer(self, command: str, request: msgspec.Struct, caller: Caller | None = None, *,
                     timeout: float = 20.0) -> tuple[int, object]:
        """The status and decoded body (a problem's too) of the reply to ``command``."""
        reply = await self.call(command, request, caller, timeout=timeout)
        return reply.status, (msgspec.json.decode(reply.body) if reply.body else None)

    async def ok(self, command: str, request: msgspec.Struct, caller: Caller | None = None,
                 status: int = 200) -> object:
        """The decoded body of a reply that must have ``status``."""
        got, body = await self.answer(command, request, caller)
        assert got == status, (command, got, body)
        return body

    def hook(self, service: str, *, timeout: float = 20.0) -> ServiceHook:
        """Calls of ``service``'s commands by request struct (nameko's ``entrypoint_hook``)."""
        return ServiceHook(self, service, timeout)

    # events ----------------------------------------------------------------------------------

    def events_of(self, type: str) -> list[Event]:
        return [e for e in self.events if e.type == type]

    async def wait_for_event(self, type: str, *, timeout: float = 10.0, **data: str) -> Event:
        with trio.move_on_after(timeout):
            while True:
                for e in self.events:
                    if e.type == type and all(e.data.get(k) == v for k, v in data.items()):
                        return e
                await trio.sleep(0.02)
        raise AssertionError(f"no {type} event with {data} within {timeout}s")

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 10.0) -> None:
        """Until ``predicate()`` is true (fails the test after ``timeout`` seconds)."""
        with trio.fail_after(timeout):
            while not predicate():
                await trio.sleep(0.02)

    # accounts (through the gateway) ----------------------------------------------------------

    async def _register(self, path: str, role: str, body: dict[str, str]) -> Account:
        r = await self.http.post(path, json=body)
        assert r.status_code == 201, f"register {role}: {r.status_code} {r.text}"
        answer = r.json()
        assert answer["userType"] == role
        return Account(answer["userId"], role, answer["authToken"], body["email"], body["password"])

    async def register_client(self, **fields: str) -> Account:
        body = {"email": unique_email("client"), "password": PASSWORD, "clientName": "Acme Ltd", **fields}
        return await self._register("/api/v1/users/clients/register", "CLIENT", body)

    async def register_freelancer(self, **fields: str) -> Account:
        body = {"email": unique_email("freelancer"), "password": PASSWORD, "fullName": "Fay Lancer", **fields}
        return await self._register("/api/v1/users/freelancers/register", "FREELANCER", body)

    async def admin(self) -> Account:
        """The admin ensured at start-up from the settings (logs in through the API)."""
        s = self.settings
        r = await self.http.post("/api/v1/users/login", json={"email": s.admin_email, "password": s.admin_password})
        assert r.status_code == 200, f"admin login: {r.status_code} {r.text}"
        answer = r.json()
        return Account(answer["userId"], "ADMIN", answer["authToken"], s.admin_email or "", s.admin_password or "")

    def token_for(self, user_id: str, role: str) -> str:
        """A valid token for any id (for routes whose account need not exist)."""
        from .gateway import TokenService
        return TokenService([self.jwt_key]).issue(user_id, role)


@dataclass(frozen=True)
class ServiceHook:
    """One service's commands, named by the request struct: ``hook.ok(Deposit(...), caller)``
    sends ``"payments.Deposit"``."""

    system: System
    service: str
    timeout: float = 20.0

    def command(self, request: msgspec.Struct) -> str:
        return f"{self.service}.{type(request).__name__}"

    async def call(self, request: msgspec.Struct, caller: Caller | None = None, *,
                   request_id: str | None = None) -> Reply:
        return await self.system.call(self.command(request), request, caller, timeout=self.timeout,
                                      request_id=request_id)

    async def ok(self, request: msgspec.Struct, caller: Caller | None = None, status: int = 200) -> object:
        """The decoded body of a reply that must have ``status``."""
        reply = await self.call(request, caller)
        assert reply.status == status, (self.command(request), reply.status, reply.body)
        return msgspec.json.decode(reply.body) if reply.body else None


# --- servers and stores (distributed) -------------------------------------------------------------

def require_server(url: str, default_port: int, what: str, variable: str) -> None:
    """Fail (never skip) with a clear message when a server does not accept connections."""
    parts = urlsplit(url if "//" in url else f"//{url}")
    host, port = parts.hostname or "127.0.0.1", parts.port or default_port
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        raise AssertionError(f"{what} not reachable at {host}:{port} ({exc}); start it with "
                             f"`bash ops/dev/services up` or set {variable}") from None


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


async def _postgres_database(stack: AsyncExitStack, tag: str) -> str:
    import psycopg
    from psycopg import sql
    base = env_value("WORKUP_TEST_POSTGRES_URL")
    require_server(base, 5432, "PostgreSQL", "WORKUP_TEST_POSTGRES_URL")
    name = f"workup_sys_{tag}"

    def admin(statement: sql.Composed) -> None:
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
    require_server(base, 27017, "MongoDB-wire server (FerretDB)", "WORKUP_TEST_MONGO_URL")
    name = f"workup_sys_{tag}"

    def drop_sync() -> None:
        client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(base, serverSelectionTimeoutMS=5000)
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
    require_server(hosts.split(",")[0].strip(), 9042, "Cassandra", "WORKUP_TEST_CASSANDRA_HOSTS")
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


async def _provisioned(mode: Mode, services: list[str], data_dir: str, stack: AsyncExitStack) -> Settings:
    """Settings for a system whose caller gave none: embedded stores in ``data_dir``, or real
    stores of this run's own (dropped by ``stack``)."""
    admin_email = os.environ.get("WORKUP_ADMIN_EMAIL") or unique_email("admin")
    admin_password = os.environ.get("WORKUP_ADMIN_PASSWORD") or "admin-" + secrets.token_hex(8)
    # every test client is 127.0.0.1: the per-address abuse limits are not what these systems test
    embedded = Settings(data_dir=data_dir, jwt_key=JWT_KEY, control_key=CONTROL_KEY,
                        admin_email=admin_email, admin_password=admin_password,
                        login_limit_address=1_000_000, register_limit_address=1_000_000)
    if mode == "embedded":
        return embedded
    tag = secrets.token_hex(5)
    hosts, prefix = None, embedded.cassandra_keyspace_prefix
    if "jobs" in services or "contracts" in services:
        hosts, prefix = await _cassandra_keyspaces(stack, tag, services)
    redis_url = env_value("WORKUP_TEST_REDIS_URL")
    require_server(redis_url, 6379, "Redis", "WORKUP_TEST_REDIS_URL")
    return msgspec.structs.replace(
        embedded, amqp_url=env_value("WORKUP_TEST_AMQP_URL"), redis_url=redis_url,
        users_mongo_url=await _mongo_database(stack, tag) if "users" in services else None,
        payments_postgres_url=await _postgres_database(stack, tag) if "payments" in services else None,
        cassandra_hosts=hosts, cassandra_keyspace_prefix=prefix)


async def _delete_topology(transport: AmqpTransport, names: set[str]) -> None:
    # the broker is shared: this run's queues and exchanges (its own prefix) go away with it
    with trio.CancelScope(shield=True):
        await transport.delete_topology(sorted(names), timeout=20)


@asynccontextmanager
async def running_system(mode: Mode = "embedded", services: Iterable[str] = ALL_SERVICES, *,
                         fakes: Mapping[str, Service[None]] | None = None, settings: Settings | None = None,
                         transport: LocalTransport | None = None, gateway: bool = True,
                         jwt_key: str | None = None, prefix: str | None = None,
                         concurrency: int = 32, grace: float = 1.0,
                         request_timeout: float = 10.0) -> AsyncIterator[System]:
    """Run ``services`` (real, by name) and ``fakes`` (name -> :func:`fake_service`) on one
    transport, collect every event, and (``gateway=True``) serve the real gateway on a free port.

    ``settings``: used as given (the caller made its stores); ``amqp_url`` in them, else the test
    broker, is used in distributed mode. ``transport``: an in-process transport of the test's own
    (embedded mode; one that holds or fails publishes, say). ``prefix``: the broker name prefix
    (default: unique).
    ``jwt_key``: the gateway's signing key (default: the settings', else :data:`JWT_KEY`)."""
    if mode not in ("embedded", "distributed"):
        raise ValueError(f"mode must be 'embedded' or 'distributed', got {mode!r}")
    names = list(services)
    fakes = dict(fakes or {})
    both = set(names) & set(fakes)
    if both:
        raise ValueError(f"services both real and faked: {sorted(both)}")
    if transport is not None and mode != "embedded":
        raise ValueError("a transport of the test's own is in-process: embedded mode only")
    for name, fake in fakes.items():
        if fake.name != name:
            raise ValueError(f"fake for {name!r} is a service named {fake.name!r}")
    with tempfile.TemporaryDirectory(prefix="workup-sys-") as data_dir:
        async with AsyncExitStack() as stack:
            if settings is None:
                settings = await _provisioned(mode, names, data_dir, stack)
            bus: LocalTransport | AmqpTransport
            started: set[str] = set()
            if mode == "distributed":
                from .transport import AmqpTransport
                url = settings.amqp_url or env_value("WORKUP_TEST_AMQP_URL")
                require_server(url, 5672, "RabbitMQ", "WORKUP_TEST_AMQP_URL")
                amqp = await stack.enter_async_context(
                    AmqpTransport.connect(url, prefix=prefix or f"wsys{secrets.token_hex(5)}"))
                stack.push_async_callback(_delete_topology, amqp, started)
                bus = amqp
            else:
                bus = transport or LocalTransport()
            cache = open_cache(settings)
            key = jwt_key or settings.jwt_key or JWT_KEY
            async with trio.open_nursery() as nursery:
                system = System(mode, settings, bus, cache, nursery,
                                control_secret=settings.control_key or CONTROL_KEY, concurrency=concurrency,
                                grace=grace, jwt_key=key, fakes=fakes, started=started)

                async def collect(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
                    events = bus.subscribe()
                    task_status.started()
                    async for event in events:
                        system.events.append(event)

                await nursery.start(collect)
                for name, fake in fakes.items():
                    await system.start(name, fake)
                async with trio.open_nursery() as starting:   # in parallel: schema set-up is slow
                    for name in names:
                        starting.start_soon(system.start, name)
                if gateway:
                    from .gateway import create_app, serve_app
                    app = create_app(settings, bus, cache, jwt_keys=key, request_timeout=request_timeout)
                    system.app = app
                    system.base_url = await nursery.start(serve_app, app)
                    system._http = httpx.AsyncClient(base_url=system.base_url, timeout=30)
                try:
                    yield system
                finally:
                    if system._http is not None:
                        with trio.CancelScope(shield=True), trio.move_on_after(5):   # also when the test was cancelled
                            await system._http.aclose()
                nursery.cancel_scope.cancel()
