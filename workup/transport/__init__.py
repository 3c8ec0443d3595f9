"""The bus between the gateway and the services: what both sides need from it, as protocols,
and its two implementations.

``LocalTransport`` (``transport.local``) is the in-process broker of ``workup up`` and of handler
tests; ``AmqpTransport`` (``transport.rabbitmq``) runs the same contract over RabbitMQ with
``workup.amqp``. ``transport.envelope`` is the one codec of what travels beside a message (caller,
deadline, reply); ``transport.identity`` signs and checks the caller it names. Nothing above this layer knows which implementation it has.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, Protocol

from .envelope import Caller, Event, Reply

if TYPE_CHECKING:  # the protocols import nothing heavy (no cryptography)
    from .identity import Identity

__all__ = ["RpcClient", "EventPublisher", "EventSource", "ServiceBus", "Request", "WorkSource",
           "ControlRequest", "ControlSource", "Server", "Transport", "DeadlineExceeded",
           "NoResponder", "LocalTransport", "AmqpTransport"]


class DeadlineExceeded(Exception):
    """No reply arrived before the call's deadline (the gateway answers 504)."""


class NoResponder(Exception):
    """The call could not be delivered (no queue/consumer, or the service is frozen: 503)."""


# -- client side: the gateway, and services calling each other ------------------------------

class RpcClient(Protocol):
    async def call(self, command: str, request: object, *, caller: Caller, timeout: float,
                   request_id: str | None = None) -> Reply:
        """Send ``request`` (a msgspec struct) as ``command`` (``"jobs.CreateJob"``) and wait for
        the reply. Raises :class:`DeadlineExceeded` after ``timeout`` seconds."""
        ...


class EventPublisher(Protocol):
    async def publish_event(self, event: Event) -> None: ...


class EventSource(Protocol):
    def subscribe(self) -> AsyncIterator[Event]:
        """Every event published from now on (the gateway fans them out to WebSockets)."""
        ...


class ServiceBus(RpcClient, EventPublisher, Protocol):
    """What a running service's handlers use: calls to other services, and events."""


# -- server side: what an instance of a service consumes --------------------------------------
# (a typed seam, as in pgjones/hypercorn:src/hypercorn/typing.py)

class Request(Protocol):
    """One unit of work as a :class:`WorkSource` hands it out (the envelope, read from the
    transport's own metadata, and the msgpack body)."""

    @property
    def command(self) -> str: ...
    @property
    def body(self) -> bytes: ...
    @property
    def caller(self) -> Caller: ...
    @property
    def deadline(self) -> float: ...
    @property
    def request_id(self) -> str: ...
    @property
    def assertion(self) -> str:
        """The signed caller assertion (``transport/identity.py``) the runtime checks."""
        ...


class WorkSource(Protocol):
    """A service's work queue, shared by the instance's pool of worker loops."""

    async def receive(self) -> Request:
        """The next request; raises ``trio.EndOfChannel`` once :meth:`close` was called and
        nothing received is left."""
        ...

    async def settle(self, request: Request, reply: Reply | None, *,
                     after: Callable[[], Awaitable[None]] | None = None) -> None:
        """Answer ``request`` (a :class:`Request` this source handed out; ``None``: no answer,
        e.g. it expired), await ``after`` (the handler's after-reply work, ``runtime/context.py``)
        and acknowledge it: after this it is never delivered again."""
        ...

    async def set_prefetch(self, n: int) -> None:
        """How many requests may be handed out and not yet settled."""
        ...

    async def close(self) -> None:
        """Stop taking new work; what was already received still comes out of :meth:`receive`."""
        ...


class ControlRequest(Protocol):
    """A signed control message as a :class:`ControlSource` hands it out."""

    @property
    def payload(self) -> bytes: ...
    @property
    def sender(self) -> str | None:
        """The broker account that published it, as the broker validated it (AMQP ``user_id``);
        ``None`` when unknown (in-process, or sent without one)."""
        ...


class ControlSource(Protocol):
    """The control messages broadcast to every instance of a service."""

    @property
    def controller(self) -> str | None:
        """The only account whose control messages may be applied (``None``: not checked, when
        the transport has no per-role broker accounts)."""
        ...

    async def receive(self) -> ControlRequest: ...

    async def reply(self, request: ControlRequest, payload: bytes) -> None:
        """Answer ``request`` (one this source handed out) to whoever broadcast it."""
        ...


class Server(Protocol):
    """The server half of a transport: a service's work queue and its control channel, and the
    keys (:class:`~workup.transport.identity.Identity`) its requests are checked with."""

    @property
    def identity(self) -> Identity: ...

    def consume(self, service: str, prefetch: int) -> AbstractAsyncContextManager[WorkSource]: ...

    def control(self, service: str) -> AbstractAsyncContextManager[ControlSource]: ...


class Transport(ServiceBus, Server, Protocol):
    """What an instance of a service runs on: both halves (``LocalTransport``, ``AmqpTransport``)."""


def __getattr__(name: str) -> Any:
    # imported on use: the in-process transport never loads the AMQP client, and the protocols
    # above import nothing heavy
    if name == "LocalTransport":
        from .local import LocalTransport
        return LocalTransport
    if name == "AmqpTransport":
        from .rabbitmq import AmqpTransport
        return AmqpTransport
    raise AttributeError(name)
