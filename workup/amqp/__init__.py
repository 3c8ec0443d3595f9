"""WorkUp's AMQP 0-9-1 client for trio (pamqp is the frame codec).

Layout (trio's): ``_core/`` is the sans-IO half (frames, message codec, the connection and
channel state machines, events, parameters; bytes in, events out, bytes to send; it never
imports trio), and ``_connection``/``_channel``/``_consumer``/``_rpc`` are the trio shell
around it (one socket, a reader task, a writer task that coalesces everything queued into one
``send_all``, heartbeats, reconnect). Two public faces: this module (the shell API below) and
``workup.amqp.lowlevel`` (the core's state machines and events).

Connection (reconnects with backoff; channels, QoS, confirm mode, declared exchanges/queues/
bindings and consumers are restored; raises on the *first* connect failure)::

    async with amqp.connect("amqp://workup-jobs:PASSWORD@127.0.0.1:5672/workup", name="jobs-worker") as conn:
        ch = await conn.channel()                   # or channel(confirms=True, prefetch=64)
        conn.is_open, conn.reconnects               # state; operations wait while reconnecting
        error = await conn.wait_closed()            # once closed for good (None after aclose)

Topology::

    await ch.declare_exchange("workup.events", "topic", durable=True)
    info = await ch.declare_queue("workup.jobs", durable=True)   # QueueInfo(name, counts)
    await ch.bind_queue("workup.jobs", "workup.events", "job.*")
    await ch.qos(64)                                 # prefetch for consumers on ch
    await ch.delete_queue(name); await ch.delete_exchange(name); await ch.purge_queue(name)

Publish (``Properties`` is a frozen msgspec struct: content_type, headers, delivery_mode,
correlation_id, reply_to, expiration, message_id, timestamp, type, ...)::

    await ch.publish(b"...", exchange="", routing_key="workup.jobs",
                     properties=amqp.Properties(type="jobs.CreateJob", delivery_mode=2),
                     mandatory=True)
    # on a confirms=True channel this returns once the broker acked it; raises
    # amqp.Unroutable (mandatory + no queue) or amqp.PublishNacked. Without confirms it only
    # queues the frames (the writer task sends them with the next batch), and waits for the
    # writer once 4096 frames are queued (backpressure).
    ok = ch.publish_nowait(b"...", routing_key="workup.jobs")  # never waits: False (nothing
    # queued) while the channel is not open or in confirm mode; then use publish()

Consume (an async iterator of ``Delivery``: body, properties, routing_key, exchange,
delivery_tag, redelivered; ``ack()``, ``nack(requeue=True)``, ``reject(requeue=True)`` are
sync and coalesced; leaving the ``async with`` cancels the consumer)::

    async with await ch.consume("workup.jobs") as consumer:
        async for delivery in consumer:
            ...
            await ch.reply(delivery, b"answer")    # to reply_to, same correlation_id
            delivery.ack()

RPC client over direct reply-to (``amq.rabbitmq.reply-to``; one channel per client)::

    rpc = await amqp.RpcClient.open(conn)
    reply = await rpc.call("workup.jobs", b"request", timeout=5.0,
                           properties=amqp.Properties(type="jobs.CreateJob"))
    reply.body, reply.properties.headers
    # raises amqp.RpcTimeout (a TimeoutError) after `timeout`, amqp.Unroutable at once when no
    # queue takes the request, amqp.ConnectionLost if the connection drops while waiting.

Errors (all ``amqp.AMQPError``): ``ConnectionClosed``/``ChannelClosed`` carry the broker's
``reply_code``/``reply_text``; ``ConnectionLost``; ``ProtocolError`` (malformed frames);
``ConsumerCancelled``; ``Unroutable``/``PublishNacked`` (both ``PublishError``); ``RpcTimeout``.

The sans-IO core (``ConnectionCore``, ``ChannelCore``, ``FrameReader`` and the events) is in
``workup.amqp.lowlevel``, for tests and tools that bring their own I/O.
"""

from ._channel import Channel as Channel
from ._channel import QueueInfo as QueueInfo
from ._connection import Connection as Connection
from ._connection import connect as connect
from ._consumer import Consumer as Consumer
from ._delivery import Delivery as Delivery
from ._core import AMQPError as AMQPError
from ._core import ChannelClosed as ChannelClosed
from ._core import ConnectionClosed as ConnectionClosed
from ._core import ConnectionLost as ConnectionLost
from ._core import ConnectionParams as ConnectionParams
from ._core import ConsumerCancelled as ConsumerCancelled
from ._core import Properties as Properties
from ._core import ProtocolError as ProtocolError
from ._core import PublishError as PublishError
from ._core import PublishNacked as PublishNacked
from ._core import Returned as Returned
from ._core import RpcTimeout as RpcTimeout
from ._core import Unroutable as Unroutable
from ._core import parse_url as parse_url
from ._rpc import REPLY_TO as REPLY_TO
from ._rpc import RpcClient as RpcClient

__all__ = [
    "AMQPError", "Channel", "ChannelClosed", "Connection", "ConnectionClosed", "ConnectionLost",
    "ConnectionParams", "Consumer", "ConsumerCancelled", "Delivery", "Properties",
    "ProtocolError", "PublishError", "PublishNacked", "QueueInfo", "REPLY_TO", "Returned",
    "RpcClient", "RpcTimeout", "Unroutable", "connect", "parse_url",
]
