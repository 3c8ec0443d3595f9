"""The bus between the gateway and the services: what both sides need from it, as protocols,
and its two implementations.

``LocalTransport`` (``transport.local``) is the in-process broker of ``workup up`` and of handler
tests; ``AmqpTransport`` (``transport.rabbitmq``) runs the same contract over RabbitMQ with
``workup.amqp``. ``transport.envelope`` is the one codec of what travels beside a message (caller,
deadline, reply). Nothing above this layer knows which implementation it has.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Protocol

from .envelope import Caller, Event, Reply

__all__ = ["RpcClient", "EventPublisher", "EventSource", "DeadlineExceeded", "NoResponder",
           "LocalTransport", "AmqpTransport"]


class DeadlineExceeded(Exception):
    """No reply arrived before the call's deadline (the gateway answers 504)."""


class NoResponder(Exception):
    """The call could not be delivered (no queue/consumer, or the service is frozen: 503)."""


class RpcClient(Protocol):
    async def call(self, command: str, request: Any, *, caller: Caller, timeout: float,
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
