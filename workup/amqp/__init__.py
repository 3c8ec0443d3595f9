"""WorkUp's AMQP 0-9-1 client for trio (pamqp is the frame codec).

Layers: ``_frames``/``_message`` (wire codec), ``_channel_core``/``_protocol`` (the sans-IO
state machines: bytes in, events out, bytes to send), and the trio shell ``_connection``/
``_channel``/``_consumer``/``_rpc`` (one socket, a reader task, a writer task that coalesces
everything queued into one ``send_all``, heartbeats, reconnect). Only this module is public.

Connection (reconnects with backoff; channels, QoS, confirm mode, declared exchanges/queues/
bindings and consumers are restored; raises on the *first* connect failure)::

    async with amqp.connect("amqp://guest:guest@127.0.0.1:5672/", name="jobs-worker") as conn:
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

The sans-IO core (``ConnectionCore``, ``ChannelCore``, ``FrameReader`` and the events) is
exported for tests and tools that bring their own I/O.
"""

from ._channel import Channel as Channel
from ._channel import QueueInfo as QueueInfo
from ._channel_core import ChannelCore as ChannelCore
from ._channel_core import ChannelState as ChannelState
from ._connection import Connection as Connection
from ._connection import connect as connect
from ._consumer import Consumer as Consumer
from ._errors import AMQPError as AMQPError
from ._errors import ChannelClosed as ChannelClosed
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import ConnectionLost as ConnectionLost
from ._errors import ConsumerCancelled as ConsumerCancelled
from ._errors import ProtocolError as ProtocolError
from ._errors import PublishError as PublishError
from ._errors import PublishNacked as PublishNacked
from ._errors import RpcTimeout as RpcTimeout
from ._errors import Unroutable as Unroutable
from ._events import Blocked as Blocked
from ._events import ChannelClosedByBroker as ChannelClosedByBroker
from ._events import ConnectionClosedByBroker as ConnectionClosedByBroker
from ._events import ConnectionCloseOk as ConnectionCloseOk
from ._events import ConnectionOpened as ConnectionOpened
from ._events import ConsumerCancelledByBroker as ConsumerCancelledByBroker
from ._events import Delivered as Delivered
from ._events import Event as Event
from ._events import MessageReturned as MessageReturned
from ._events import MethodReply as MethodReply
from ._events import PublishConfirmed as PublishConfirmed
from ._events import RequestsAbandoned as RequestsAbandoned
from ._events import Unblocked as Unblocked
from ._frames import FrameReader as FrameReader
from ._message import Delivery as Delivery
from ._message import Properties as Properties
from ._message import Returned as Returned
from ._params import ConnectionParams as ConnectionParams
from ._params import parse_url as parse_url
from ._protocol import ConnectionCore as ConnectionCore
from ._rpc import REPLY_TO as REPLY_TO
from ._rpc import RpcClient as RpcClient

__all__ = [
    "AMQPError", "Channel", "ChannelClosed", "ChannelCore", "ChannelState", "Connection",
    "ConnectionClosed", "ConnectionCore", "ConnectionLost", "ConnectionParams", "Consumer",
    "ConsumerCancelled", "Delivery", "FrameReader", "Properties", "ProtocolError",
    "PublishError", "PublishNacked", "QueueInfo", "REPLY_TO", "Returned", "RpcClient",
    "RpcTimeout", "Unroutable", "connect", "parse_url",
    # sans-IO events
    "Blocked",
    "ChannelClosedByBroker",
    "ConnectionClosedByBroker",
    "ConnectionCloseOk",
    "ConnectionOpened",
    "ConsumerCancelledByBroker",
    "Delivered",
    "Event",
    "MessageReturned",
    "MethodReply",
    "PublishConfirmed",
    "RequestsAbandoned",
    "Unblocked",
]
