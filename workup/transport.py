"""What the gateway and the services need from a transport, as protocols.

Two implementations: RabbitMQ (``workup.amqp`` driven by ``workup.workers``) and the in-process
transport of ``workup up``. Nothing above this layer knows which one it has.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Protocol

from .envelope import Caller, Event, Reply

__all__ = ["RpcClient", "EventPublisher", "EventSource", "DeadlineExceeded", "NoResponder"]


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
