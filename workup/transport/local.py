"""The in-process transport: what ``workup up`` runs on when no RabbitMQ is configured, and what
handler tests use. Same contract as :class:`~workup.transport.AmqpTransport`: per-service work
queues shared by competing consumers, RPC replies, a fanout control channel per service, and
events fanned out to :meth:`LocalTransport.subscribe` iterators. Requests are msgpack-encoded and
go through the same dispatch code as over AMQP.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, cast

import trio

from .envelope import Caller, Event, Reply, encode, new_request_id
from .identity import Identity, default_identity
from . import ControlRequest, DeadlineExceeded, NoResponder, Request

__all__ = ["LocalTransport"]

log = logging.getLogger("workup.runtime.local")

_EVENT_BUFFER = 1024  # per subscriber; a subscriber that falls this far behind loses events


class _Pending:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.reply: Reply | None = None


class LocalDelivery:
    __slots__ = ("command", "body", "caller", "deadline", "request_id", "assertion", "_pending")

    def __init__(self, command: str, body: bytes, caller: Caller, deadline: float,
                 request_id: str, pending: _Pending | None, assertion: str = "") -> None:
        self.command = command
        self.body = body
        self.caller = caller
        self.deadline = deadline
        self.request_id = request_id
        self.assertion = assertion
        self._pending = pending


class _Queue:
    """A service's work queue: a deque plus a parking lot for idle consumers."""

    def __init__(self) -> None:
        self.items: deque[LocalDelivery] = deque()
        self.lot = trio.lowlevel.ParkingLot()
        self.consumers = 0

    def put(self, item: LocalDelivery) -> None:
        self.items.append(item)
        self.lot.unpark()


class LocalWorkSource:
    def __init__(self, queue: _Queue) -> None:
        self._queue = queue
        self._closed = False
        self.unsettled: set[LocalDelivery] = set()  # handed out, not yet answered

    async def receive(self) -> LocalDelivery:
        q = self._queue
        while True:
            if self._closed:
                if q.items:
                    q.lot.unpark()  # pass the wake-up on to a live consumer
                raise trio.EndOfChannel
            if q.items:
                await trio.lowlevel.checkpoint()
                if q.items and not self._closed:
                    d = q.items.popleft()
                    self.unsettled.add(d)
                    return d
                continue
            await q.lot.park()

    async def settle(self, request: Request, reply: Reply | None, *,
                     after: Callable[[], Awaitable[None]] | None = None) -> None:
        delivery = cast(LocalDelivery, request)  # a source settles only what it handed out
        pending = delivery._pending
        if pending is not None and reply is not None:
            pending.reply = reply
            pending.event.set()
        if after is not None:
            await after()
        self.unsettled.discard(delivery)   # the ack: after the reply and its after-reply work

    async def set_prefetch(self, n: int) -> None:
        await trio.lowlevel.checkpoint()  # the consumer's limiter is the only bound in process

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.consumers -= 1
            self._queue.lot.unpark_all()  # wake our parked loops (others re-park)


class ControlDelivery:
    __slots__ = ("payload", "_replies")
    sender: str | None = None  # in-process: no broker accounts

    def __init__(self, payload: bytes, replies: trio.MemorySendChannel[bytes] | None) -> None:
        self.payload = payload
        self._replies = replies


class LocalControlSource:
    controller: str | None = None  # in-process: whoever holds the transport may send control

    def __init__(self, receive: trio.MemoryReceiveChannel[ControlDelivery]) -> None:
        self._receive = receive

    async def receive(self) -> ControlDelivery:
        return await self._receive.receive()

    async def reply(self, request: ControlRequest, payload: bytes) -> None:
        delivery = cast(ControlDelivery, request)  # a source answers only what it handed out
        if delivery._replies is not None:
            try:
                delivery._replies.send_nowait(payload)
            except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                pass  # the controller stopped listening


class _Subscription:
    def __init__(self, receive: trio.MemoryReceiveChannel[Event], forget: Callable[[], None]) -> None:
        self._receive = receive
        self._forget = forget

    def __aiter__(self) -> _Subscription:
        return self

    async def __anext__(self) -> Event:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        self._forget()
        await self._receive.aclose()

    def __del__(self) -> None:
        self._forget()


class LocalTransport:
    """In-process broker. Implements RpcClient, EventPublisher and EventSource, plus the server
    side (:meth:`consume`, :meth:`control`) that :func:`~workup.runtime.serve_service` uses.
    ``identity``: the keys its calls are signed with and its services check requests with
    (default: :func:`~workup.transport.identity.default_identity`)."""

    def __init__(self, identity: Identity | None = None) -> None:
        self._identity = identity or default_identity()
        self._queues: dict[str, _Queue] = {}
        self._controls: dict[str, set[trio.MemorySendChannel[ControlDelivery]]] = {}
        self._subscribers: set[trio.MemorySendChannel[Event]] = set()

    @property
    def identity(self) -> Identity:
        """The keys this transport signs its calls with (and its services check requests with)."""
        return self._identity

    def _queue(self, service: str) -> _Queue:
        q = self._queues.get(service)
        if q is None:
            q = self._queues[service] = _Queue()
        return q

    # -- client side -----------------------------------------------------------------------
    async def call(self, command: str, request: object, *, caller: Caller, timeout: float,
                   request_id: str | None = None) -> Reply:
        service = command.partition(".")[0]
        q = self._queues.get(service)
        if q is None or q.consumers <= 0:
            raise NoResponder(f"no running instance of {service!r}")
        pending = _Pending()
        body, deadline, request_id = encode(request), time.time() + timeout, request_id or new_request_id()
        assertion = self.identity.sign(command, caller, deadline, request_id, body)
        q.put(LocalDelivery(command, body, caller, deadline, request_id, pending, assertion))
        with trio.move_on_after(timeout):
            await pending.event.wait()
        if pending.reply is None:
            raise DeadlineExceeded(f"{command}: no reply within {timeout:.3g}s")
        return pending.reply

    async def publish_event(self, event: Event) -> None:
        for send in list(self._subscribers):
            try:
                send.send_nowait(event)
            except trio.WouldBlock:
                log.warning("event subscriber is %d events behind; dropped %s", _EVENT_BUFFER, event.type)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._subscribers.discard(send)
        await trio.lowlevel.checkpoint()

    def subscribe(self) -> AsyncIterator[Event]:
        """Every event published from the moment of this call (registered at once, not at the
        first ``__anext__``, so nothing emitted in between is missed)."""
        send, receive = trio.open_memory_channel[Event](_EVENT_BUFFER)
        self._subscribers.add(send)
        return _Subscription(receive, lambda: self._subscribers.discard(send))

    async def broadcast_control(self, service: str, payload: bytes, *, timeout: float,
                                expect: int | None = None) -> list[bytes]:
        """Send a control message to every instance of ``service``; the replies that arrive
        within ``timeout`` (returns early once ``expect`` replies are in)."""
        send_r, receive_r = trio.open_memory_channel[bytes](math.inf)
        for send in list(self._controls.get(service, ())):
            try:
                send.send_nowait(ControlDelivery(payload, send_r))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
        replies: list[bytes] = []
        with trio.move_on_after(timeout):
            async for reply in receive_r:
                replies.append(reply)
                if expect is not None and len(replies) >= expect:
                    break
        return replies

    def consumer_count(self, service: str) -> int:
        q = self._queues.get(service)
        return q.consumers if q else 0

    def subscriber_count(self) -> int:
        """Event subscriptions open now (:meth:`subscribe`)."""
        return len(self._subscribers)

    # -- server side -----------------------------------------------------------------------
    @asynccontextmanager
    async def consume(self, service: str, prefetch: int) -> AsyncIterator[LocalWorkSource]:
        q = self._queue(service)
        q.consumers += 1
        source = LocalWorkSource(q)
        try:
            yield source
        finally:
            await source.close()
            # like a broker: work cut off mid-command goes back to the queue, in order
            for d in sorted(source.unsettled, key=lambda d: d.deadline, reverse=True):
                q.items.appendleft(d)
            if source.unsettled:
                q.lot.unpark_all()

    @asynccontextmanager
    async def control(self, service: str) -> AsyncIterator[LocalControlSource]:
        send, receive = trio.open_memory_channel[ControlDelivery](math.inf)
        members = self._controls.setdefault(service, set())
        members.add(send)
        try:
            yield LocalControlSource(receive)
        finally:
            members.discard(send)
