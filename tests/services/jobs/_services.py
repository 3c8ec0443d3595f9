"""Running the jobs and contracts services for tests, over the in-process transport.

``payments`` is a small test double of the peer service (the real one is another engineer's):
idempotent ``CreatePaymentRequest`` on the milestone id and a record of ``CancelContractRequests``.
Stores are SQLite in a temporary data dir unless the given settings name Cassandra (see
``_fixtures.store_settings``); the transport is RabbitMQ when they name a broker.
"""

from __future__ import annotations

import secrets
import uuid
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import msgspec
import trio

from workup.transport.envelope import Caller, Event
from workup.messages.payments import CancelContractRequests, CreatePaymentRequest, PaymentRequestRef
from workup.settings import Settings
from workup.transport import LocalTransport
from workup.runtime import Service, load_service, serve_service

SECRET = "jobs-contracts-test-secret"
def new_id() -> str:
    return uuid.uuid4().hex


class FakePayments:
    """The payments peer, reduced to what contracts calls."""

    def __init__(self) -> None:
        self.requests: dict[str, CreatePaymentRequest] = {}
        self.ids: dict[str, str] = {}
        self.cancelled: list[str] = []
        self.service: Service[None] = Service("payments")
        self.service.command(CreatePaymentRequest, status=201)(self._create)
        self.service.command(CancelContractRequests)(self._cancel)

    async def _create(self, ctx: Any, req: CreatePaymentRequest) -> PaymentRequestRef:
        assert ctx.caller.role == "SERVICE"
        self.requests[req.milestone_id] = req
        return PaymentRequestRef(id=self.ids.setdefault(req.milestone_id, new_id()))

    async def _cancel(self, ctx: Any, req: CancelContractRequests) -> None:
        self.cancelled.append(req.contract_id)


class Harness:
    def __init__(self, transport: LocalTransport, settings: Settings, nursery: trio.Nursery) -> None:
        self.transport = transport
        self.settings = settings
        self.nursery = nursery
        self.payments = FakePayments()
        self.events: list[Event] = []
        self.scopes: dict[str, trio.CancelScope] = {}
        self.started: set[str] = set()   # every service name started (their queues are deleted at the end)

    async def call(self, command: str, request: Any, caller: Caller | None = None, *,
                   request_id: str | None = None, timeout: float = 20) -> tuple[int, Any]:
        reply = await self.transport.call(command, request, caller=caller or Caller(None, None),
                                          timeout=timeout, request_id=request_id)
        return reply.status, (msgspec.json.decode(reply.body) if reply.body else None)

    async def ok(self, command: str, request: Any, caller: Caller | None = None, status: int = 200) -> Any:
        got, body = await self.call(command, request, caller)
        assert got == status, (command, got, body)
        return body

    async def start(self, name: str, service: Service[Any] | None = None) -> None:
        """Start one instance of ``name`` (``payments`` = the fake, unless ``service`` is given)
        in its own cancel scope."""
        if service is None:
            service = self.payments.service if name == "payments" else load_service(name)
        self.started.add(name)

        async def run(task_status: trio.TaskStatus[None]) -> None:
            with trio.CancelScope() as scope:
                self.scopes[name] = scope
                await serve_service(service, self.settings, self.transport, concurrency=16,
                                    grace=1.0, control_secret=SECRET, task_status=task_status)

        await self.nursery.start(run)

    def kill(self, name: str) -> None:
        """Stop an instance at once, wherever it is (as a killed process would)."""
        self.scopes.pop(name).cancel()

    async def _collect(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        events = self.transport.subscribe()
        task_status.started()
        async for event in events:
            self.events.append(event)

    def events_of(self, type: str) -> list[Event]:
        return [e for e in self.events if e.type == type]


def make_settings(data_dir: Path) -> Settings:
    return Settings(data_dir=str(data_dir))


@asynccontextmanager
async def running(data_dir: Path, names: tuple[str, ...] = ("jobs", "contracts", "payments"),
                  settings: Settings | None = None, transport: Any = None) -> AsyncIterator[Harness]:
    """The services on the in-process transport (or ``transport``), or on RabbitMQ (unique
    names) when ``settings.amqp_url`` is set."""
    settings = settings or make_settings(data_dir)
    async with AsyncExitStack() as stack:
        if settings.amqp_url:
            from workup.transport import AmqpTransport
            prefix = f"wjc{secrets.token_hex(5)}"
            transport = await stack.enter_async_context(AmqpTransport.connect(settings.amqp_url, prefix=prefix))
            started: set[str] = set(names)
            stack.push_async_callback(delete_topology, transport, prefix, started)
        elif transport is None:
            transport = LocalTransport()
        async with trio.open_nursery() as nursery:
            h = Harness(transport, settings, nursery)
            if settings.amqp_url:
                h.started = started
            await nursery.start(h._collect)
            for name in names:
                await h.start(name)
            yield h
            nursery.cancel_scope.cancel()


async def delete_topology(transport: Any, prefix: str, names: set[str]) -> None:
    """The run's queues and exchanges (unique prefix) go away with it: the broker is shared."""
    assert transport.prefix == prefix
    await transport.delete_topology(sorted(names), timeout=20)
