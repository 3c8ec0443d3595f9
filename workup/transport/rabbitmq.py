"""The RabbitMQ transport, on our own trio AMQP client (``workup.amqp``).

Topology (``prefix`` defaults to ``workup``; tests use a unique one):

- ``<prefix>.<service>``: durable work queue, one per service, shared by every instance (each
  consumes with prefetch = its concurrency); dead-letter exchange ``<prefix>.dlx`` (direct), whose
  queue ``<prefix>.<service>.dead`` keeps poison messages.
- Redeliveries are counted in the ``x-workup-attempts`` header: a delivery the broker marks
  ``redelivered`` (its consumer died or was cut off mid-command) is re-published with the count
  plus one and acked; past :data:`MAX_ATTEMPTS` it is rejected into the dead-letter queue. (A
  classic queue keeps the fast path free of quorum-queue consensus; only redeliveries pay.)
- RPC: requests go to the default exchange, ``mandatory``, with ``reply_to`` =
  ``amq.rabbitmq.reply-to`` (direct reply-to), ``correlation_id``, ``type`` = command,
  ``message_id`` = request id and the caller/role/deadline/identity headers; replies are msgpack
  :class:`~workup.transport.envelope.Reply`. Requests are transient: a caller outlives no broker restart.
- ``<prefix>.control.<service>``: fanout; every instance binds an exclusive server-named queue.
- ``<prefix>.events``: topic exchange, routing key = event type.
- Every message this transport publishes carries the AMQP ``user_id`` of its account (when it logs
  in with a user name), which RabbitMQ checks against the connection's login: the sender of a
  control message is known for certain, and an instance logged in as a role account
  (``transport/accounts.py``) refuses control messages not sent by ``workup-controller``.

Frozen services: a call to a service whose queue has no consumer fails fast with
:class:`NoResponder` (the gateway's 503). Consumer counts come from a passive ``queue.declare``,
cached for :data:`CONSUMER_CHECK_TTL` seconds per service.
"""

from __future__ import annotations

import itertools
import logging
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, Sequence, cast

import msgspec
import trio

from .. import amqp
from ..amqp import Channel, ChannelClosed, Connection, Consumer, Delivery, Properties
from .envelope import Caller, Envelope, Event, Reply, encode, from_headers, new_request_id, to_headers
from .accounts import controller_for
from .identity import Identity, default_identity
from . import ControlRequest, DeadlineExceeded, NoResponder, Request

__all__ = ["AmqpTransport", "MAX_ATTEMPTS", "CONSUMER_CHECK_TTL", "ATTEMPTS_HEADER"]

log = logging.getLogger("workup.runtime.amqp")

MAX_ATTEMPTS = 5
ATTEMPTS_HEADER = "x-workup-attempts"
CONSUMER_CHECK_TTL = 1.0
REPLY_TO = amqp.REPLY_TO

_decode_reply = msgspec.msgpack.Decoder(Reply).decode
_decode_event = msgspec.msgpack.Decoder(Event).decode


class AmqpDelivery:
    """One request: its envelope, read from the AMQP properties with
    :func:`~workup.transport.envelope.from_headers`, its body, and the raw delivery to ack."""

    __slots__ = ("command", "body", "caller", "deadline", "request_id", "assertion", "raw")

    def __init__(self, raw: Delivery) -> None:
        p = raw.properties
        env = from_headers(p.type or "", p.message_id, p.headers)
        self.raw = raw
        self.body = raw.body
        self.command, self.caller = env.command, env.caller
        self.deadline, self.request_id = env.deadline, env.request_id
        self.assertion = env.assertion


class AmqpWorkSource:
    """The consumer of one service queue, shared by a pool of worker loops: they all wait on it
    at once and each delivery goes straight to one of them (``amqp/_consumer.py``)."""

    def __init__(self, transport: AmqpTransport, channel: Channel, consumer: Consumer,
                 queue: str) -> None:
        self._t = transport
        self._channel = channel
        self._consumer = consumer
        self._queue = queue
        self._retired: list[Consumer] = []  # consumers replaced by set_prefetch, still being drained

    def _retired_buffered(self) -> Delivery | None:
        while self._retired:
            raw = self._retired[0].receive_nowait()
            if raw is not None:
                return raw
            del self._retired[0]  # cancelled and empty: nothing more can arrive on it
        return None

    async def receive(self) -> AmqpDelivery:
        while True:
            raw = self._retired_buffered() if self._retired else None
            if raw is None:
                consumer = self._consumer
                try:
                    raw = await consumer.__anext__()
                except StopAsyncIteration:
                    if consumer is self._consumer:
                        raise trio.EndOfChannel from None
                    continue  # replaced by set_prefetch: wait on the new one
            if raw.redelivered and not await self._recount(raw):
                continue
            return AmqpDelivery(raw)

    async def _recount(self, raw: Delivery) -> bool:
        """A redelivery: re-publish with the attempt count raised (or dead-letter it). Returns
        whether to process it now (never: the re-published copy comes back through the queue)."""
        headers = dict(raw.properties.headers or {})
        attempts = int(headers.get(ATTEMPTS_HEADER, 0)) + 1
        if attempts >= MAX_ATTEMPTS:
            log.error("%s: message %s (%s) failed %d times; dead-lettered", self._queue,
                      raw.properties.message_id, raw.properties.type, attempts)
            raw.reject(requeue=False)
            return False
        headers[ATTEMPTS_HEADER] = attempts
        # re-published by us: the broker accepts only our own account as its user_id
        props = msgspec.structs.replace(raw.properties, headers=headers, user_id=self._t.user)
        await self._t._confirm_publish(raw.body, routing_key=self._queue, properties=props)
        raw.ack()
        return False

    async def settle(self, request: Request, reply: Reply | None, *,
                     after: Callable[[], Awaitable[None]] | None = None) -> None:
        raw = cast(AmqpDelivery, request).raw  # a source settles only what it handed out
        if reply is not None:
            p = raw.properties
            if p.reply_to:
                await self._channel.publish(encode(reply), routing_key=p.reply_to, properties=Properties(
                    correlation_id=p.correlation_id, user_id=self._t.user))
        if after is not None:
            await after()
        raw.ack()  # after the reply and its after-reply work: a crash before this redelivers, never loses

    async def set_prefetch(self, n: int) -> None:
        """``basic.qos`` binds consumers created after it, so the consumer is replaced; the old
        one's deliveries are still handed out (and acked) before it is forgotten."""
        if self._consumer.ended:
            return
        await self._channel.qos(n)
        old, self._consumer = self._consumer, await self._channel.consume(self._queue)
        await old.cancel()  # after cancel-ok nothing more arrives on it; its waiters move over
        self._retired.append(old)

    async def close(self) -> None:
        """Stop consuming; deliveries already received still come out of :meth:`receive`."""
        await self._consumer.cancel()


class AmqpControlSource:
    def __init__(self, channel: Channel, consumer: Consumer, user: str | None) -> None:
        self._channel = channel
        self._consumer = consumer
        self._user = user
        self._controller = controller_for(user)

    @property
    def controller(self) -> str | None:
        """The only account whose control messages count (a role account's instance)."""
        return self._controller

    async def receive(self) -> _ControlDelivery:
        return _ControlDelivery(await self._consumer.__anext__())

    async def reply(self, request: ControlRequest, payload: bytes) -> None:
        p = cast(_ControlDelivery, request).raw.properties
        if p.reply_to:
            await self._channel.publish(payload, routing_key=p.reply_to, properties=Properties(
                correlation_id=p.correlation_id, user_id=self._user))


class _ControlDelivery:
    __slots__ = ("raw", "payload", "sender")

    def __init__(self, raw: Delivery) -> None:
        self.raw = raw
        self.payload = raw.body
        self.sender = raw.properties.user_id  # validated by the broker when present


class AmqpTransport:
    """RpcClient + EventPublisher + EventSource over RabbitMQ, and the server side used by
    :func:`~workup.runtime.serve_service`. Create with ``async with AmqpTransport.connect(url)``;
    ``identity`` as for :class:`~workup.transport.LocalTransport`."""

    def __init__(self, conn: Connection, prefix: str, rpc: amqp.RpcClient,
                 identity: Identity | None = None) -> None:
        self._identity = identity or default_identity()
        self.conn = conn
        # the account we log in as, put in every message's user_id (unknown with EXTERNAL login)
        self.user = conn.params.username if conn.params.auth_mechanism == "PLAIN" else None
        self.prefix = prefix
        self._rpc = rpc
        self._channels: dict[str, Channel] = {}   # long-lived helper channels, opened on first use
        self._channels_lock = trio.Lock()
        self._consumers: dict[str, tuple[int, float]] = {}
        self._checking: set[str] = set()
        self._declared: set[str] = set()
        self._ctl: tuple[Channel, Consumer] | None = None
        self._ctl_lock = trio.Lock()
        self._rid = new_request_id()[:16]  # request ids: a random prefix and a counter
        self._ids = itertools.count(1)

    @property
    def identity(self) -> Identity:
        """The keys this transport signs its calls with (and its services check requests with)."""
        return self._identity

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str, *, prefix: str = "workup", name: str | None = None,
                      identity: Identity | None = None) -> AsyncIterator[AmqpTransport]:
        async with amqp.connect(url, name=name or f"workup-{prefix}") as conn:
            yield cls(conn, prefix, await amqp.RpcClient.open(conn), identity)

    def queue_name(self, service: str) -> str:
        return f"{self.prefix}.{service}"

    # -- client side -----------------------------------------------------------------------
    async def _channel(self, role: str, confirms: bool = False) -> Channel:
        channel = self._channels.get(role)
        if channel is None:
            async with self._channels_lock:
                channel = self._channels.get(role)
                if channel is None:
                    channel = self._channels[role] = await self.conn.channel(confirms=confirms)
        return channel

    async def consumer_count(self, service: str) -> int:
        """Consumers on the service's queue right now (0 when the queue does not exist)."""
        check = await self._channel("check")
        try:
            info = await check.declare_queue(self.queue_name(service), passive=True)
        except ChannelClosed:
            return 0
        return int(info.consumer_count)

    async def _has_consumer(self, service: str) -> bool:
        cached = self._consumers.get(service)
        now = time.monotonic()
        if cached is not None and (cached[1] > now or service in self._checking):
            return cached[0] > 0
        self._checking.add(service)
        try:
            count = await self.consumer_count(service)
        finally:
            self._checking.discard(service)
        self._consumers[service] = (count, now + CONSUMER_CHECK_TTL)
        return count > 0

    async def call(self, command: str, request: object, *, caller: Caller, timeout: float,
                   request_id: str | None = None, require_consumer: bool = True) -> Reply:
        """Never outlives ``timeout``. :class:`NoResponder` (503) when the request was not sent:
        the broker connection is down, no consumer, no queue; :class:`DeadlineExceeded` (504) once
        it was sent and no reply came, including a connection lost after sending (the service
        may have applied it)."""
        service = command.partition(".")[0]
        until = trio.current_time() + timeout
        cached = self._consumers.get(service)
        if not (self.conn.is_open and (not require_consumer or (
                cached is not None and cached[0] > 0 and cached[1] >= time.monotonic()))):
            # not known sendable right now: ask (the usual call skips this cancel scope)
            with trio.move_on_at(until) as checking:
                await self._check_sendable(service, require_consumer)
            if checking.cancelled_caught:
                raise NoResponder(f"the broker did not answer within {timeout:.3g}s; {command} not sent")
        request_id = request_id or f"{self._rid}{next(self._ids):x}"
        body, deadline = encode(request), time.time() + timeout
        assertion = self.identity.sign(command, caller, deadline, request_id, body)
        headers = to_headers(Envelope(command, caller, deadline, request_id, assertion))
        try:
            d = await self._rpc.call(
                self.queue_name(service), body, timeout=max(until - trio.current_time(), 0.001),
                properties=Properties(type=command, message_id=request_id, headers=headers,
                                      user_id=self.user))
        except amqp.RpcTimeout:
            raise DeadlineExceeded(f"{command}: no reply within {timeout:.3g}s") from None
        except amqp.Unroutable:
            raise NoResponder(f"no queue for {service!r}") from None
        except amqp.ConnectionLost:
            raise DeadlineExceeded(f"lost the broker connection after sending {command}; "
                                   "it may have been applied") from None
        return _decode_reply(d.body)

    async def _check_sendable(self, service: str, require_consumer: bool) -> None:
        """Raise :class:`NoResponder` unless a request for ``service`` can go out now: a call
        does not wait for a reconnect (the caller retries after its 503)."""
        if not self.conn.is_open:
            raise NoResponder("the broker connection is down (reconnecting)")
        if not require_consumer:
            return
        cached = self._consumers.get(service)
        try:
            if cached is None or cached[1] < time.monotonic() and service not in self._checking:
                has = await self._has_consumer(service)
            else:
                has = cached[0] > 0
        except amqp.AMQPError as exc:   # the connection went while asking
            raise NoResponder(f"the broker connection failed ({exc})") from None
        if not has:
            raise NoResponder(f"no running instance of {service!r} (absent or frozen)")

    async def _confirm_publish(self, body: bytes, *, routing_key: str, properties: Properties) -> None:
        await (await self._channel("confirm", confirms=True)).publish(
            body, routing_key=routing_key, properties=properties)

    async def _declare_exchange(self, name: str, type: str) -> None:
        if name not in self._declared:
            await (await self._channel("publish")).declare_exchange(name, type, durable=True)
            self._declared.add(name)

    async def publish_event(self, event: Event) -> None:
        exchange = f"{self.prefix}.events"
        await self._declare_exchange(exchange, "topic")
        await (await self._channel("publish")).publish(encode(event), exchange=exchange, routing_key=event.type,
                                                       properties=Properties(user_id=self.user))

    async def subscribe(self) -> AsyncIterator[Event]:
        exchange = f"{self.prefix}.events"
        async with await self.conn.channel() as channel:
            await channel.declare_exchange(exchange, "topic", durable=True)
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            await channel.bind_queue(queue.name, exchange, "#")
            async with await channel.consume(queue.name, no_ack=True) as consumer:
                async for d in consumer:
                    try:
                        yield _decode_event(d.body)
                    except msgspec.MsgspecError:
                        log.warning("undecodable event on %s", exchange)

    async def broadcast_control(self, service: str, payload: bytes, *, timeout: float,
                                expect: int | None = None) -> list[bytes]:
        """Publish on the service's fanout exchange and collect the replies that arrive within
        ``timeout`` (or until ``expect`` of them). One broadcast at a time per transport, on one
        long-lived channel whose direct reply-to consumer stays open."""
        exchange = f"{self.prefix}.control.{service}"
        replies: list[bytes] = []
        async with self._ctl_lock:
            if self._ctl is None:
                channel = await self.conn.channel()
                self._ctl = (channel, await channel.consume(REPLY_TO, no_ack=True))
            channel, consumer = self._ctl
            if exchange not in self._declared:
                await channel.declare_exchange(exchange, "fanout", durable=True)
                self._declared.add(exchange)
            corr = new_request_id()
            await channel.publish(payload, exchange=exchange, properties=Properties(
                reply_to=REPLY_TO, correlation_id=corr, type="control", user_id=self.user))
            with trio.move_on_after(timeout):
                async for d in consumer:
                    if d.properties.correlation_id == corr:  # late replies to earlier ones: skip
                        replies.append(d.body)
                        if expect is not None and len(replies) >= expect:
                            break
        return replies

    async def delete_topology(self, services: Sequence[str], *, timeout: float = 10.0) -> None:
        """Delete what instances of ``services`` declared under this transport's prefix (work and
        dead-letter queues, control exchanges, the dlx and events exchanges): for test and bench
        runs on a shared broker. Best effort and bounded; a missing name is not an error."""
        names = ([("queue", q) for s in services for q in (self.queue_name(s), f"{self.queue_name(s)}.dead")]
                 + [("exchange", f"{self.prefix}.control.{s}") for s in services]
                 + [("exchange", f"{self.prefix}.dlx"), ("exchange", f"{self.prefix}.events")])
        with trio.move_on_after(timeout):
            for kind, name in names:
                try:  # one channel each: a broker error closes the channel it happened on
                    async with await self.conn.channel() as channel:
                        if kind == "queue":
                            await channel.delete_queue(name)
                        else:
                            await channel.delete_exchange(name)
                except amqp.AMQPError:
                    pass

    # -- server side -----------------------------------------------------------------------
    @asynccontextmanager
    async def consume(self, service: str, prefetch: int) -> AsyncIterator[AmqpWorkSource]:
        queue = self.queue_name(service)
        dlx = f"{self.prefix}.dlx"
        async with await self.conn.channel(prefetch=prefetch) as channel:
            await channel.declare_exchange(dlx, "direct", durable=True)
            await channel.declare_queue(f"{queue}.dead", durable=True)
            await channel.bind_queue(f"{queue}.dead", dlx, queue)
            await channel.declare_queue(queue, durable=True, arguments={"x-dead-letter-exchange": dlx})
            async with await channel.consume(queue) as consumer:
                self._consumers.pop(service, None)
                yield AmqpWorkSource(self, channel, consumer, queue)
        self._consumers.pop(service, None)

    @asynccontextmanager
    async def control(self, service: str) -> AsyncIterator[AmqpControlSource]:
        exchange = f"{self.prefix}.control.{service}"
        async with await self.conn.channel() as channel:
            await channel.declare_exchange(exchange, "fanout", durable=True)
            queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
            await channel.bind_queue(queue.name, exchange)
            async with await channel.consume(queue.name, no_ack=True) as consumer:
                yield AmqpControlSource(channel, consumer, self.user)
