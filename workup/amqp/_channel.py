"""The application's handle on an AMQP channel (the trio side of :class:`ChannelCore`).

A :class:`Channel` outlives the broker channels under it: after the broker closes it (an
error such as a 404) it re-opens on next use, and after a reconnect the connection re-opens
it with its QoS, confirm mode and consumers.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Protocol

import msgspec
import trio
from pamqp import commands as C

from ._core._channel import ChannelCore, ChannelState
from ._consumer import Consumer
from ._delivery import Delivery
from ._core._errors import (ChannelClosed, ConnectionLost, ConsumerCancelled, PublishNacked,
                      Unroutable)
from ._core._message import EMPTY_PROPERTIES, Properties, Returned
from ._core._protocol import ConnectionCore
from ._core._topology import Topology
from ._waiter import Waiter

__all__ = ["Channel", "QueueInfo", "Link"]

log = logging.getLogger("workup.amqp")
_tags = itertools.count(1)
_OPEN = ChannelState.OPEN
# unconfirmed publishes wait for the writer once this many frames are queued and unsent
HIGH_WATER_FRAMES = 4096


class QueueInfo:
    __slots__ = ("name", "message_count", "consumer_count")

    def __init__(self, name: str, message_count: int, consumer_count: int) -> None:
        self.name = name
        self.message_count = message_count
        self.consumer_count = consumer_count

    def __repr__(self) -> str:
        return f"QueueInfo({self.name!r}, messages={self.message_count}, " \
               f"consumers={self.consumer_count})"


class Link(Protocol):
    """What a channel needs from its connection (``Connection`` is the one implementation; a
    protocol rather than an import keeps ``_connection`` -> ``_channel`` one-way)."""

    reconnect: bool
    _up: bool
    _closing: bool
    _generation: int
    _topology: Topology

    async def _wait_up(self) -> ConnectionCore: ...
    def _require_core(self) -> ConnectionCore: ...
    def _wake(self) -> None: ...
    async def _backpressure(self) -> None: ...
    def _forget_channel(self, channel: "Channel") -> None: ...


class Channel:
    def __init__(self, connection: Link, number: int, confirms: bool) -> None:
        self.connection = connection
        self.number = number
        self.confirms = confirms
        self._core: ChannelCore | None = None
        self._qos: tuple[int, int] | None = None
        self._sinks: dict[str, Callable[[Delivery], None]] = {}
        self._consumers: dict[str, Consumer] = {}
        self._confirm_waiters: dict[int, Waiter] = {}
        self._opening: Waiter | None = None
        self._closed = False
        self.on_return: Callable[[Returned], None] | None = None
        self._gone_hooks: list[Callable[[BaseException, bool], None]] = []

    def add_gone_callback(self, hook: Callable[[BaseException, bool], None]) -> None:
        """Call ``hook(error, fatal)`` each time the broker channel under this handle goes
        (``fatal``: for good; otherwise a reconnect re-opens it)."""
        self._gone_hooks.append(hook)

    # -- lifecycle ---------------------------------------------------------------------------

    async def _ready(self) -> ChannelCore:
        """The open core, waiting for a reconnect or re-opening after a broker close."""
        while True:
            core = self._core
            if core is not None and core.state is _OPEN and self.connection._up:
                return core
            if self._closed:
                raise ChannelClosed(200, "channel closed by the application")
            await self.connection._wait_up()
            core = self._core
            if core is not None and core.state is _OPEN:
                return core
            await self._open()

    async def _open(self) -> None:
        """Open (or re-open) the broker channel and restore QoS and confirm mode."""
        if self._opening is not None:
            await self._opening.wait()
            return
        self._opening = waiter = Waiter()
        try:
            conn_core = self.connection._require_core()
            reply = Waiter()
            self._core = core = conn_core.open_channel(self.number, reply)
            self.connection._wake()
            await reply.wait()
            if self._qos is not None:
                await self._sync(core, C.Basic.Qos(prefetch_size=self._qos[1],
                                                   prefetch_count=self._qos[0]))
            if self.confirms:
                await self._sync(core, C.Confirm.Select())
            waiter.set(None)
        except BaseException as exc:
            waiter.fail(exc if isinstance(exc, Exception) else ConnectionLost("cancelled"))
            raise
        finally:
            self._opening = None

    async def _sync(self, core: ChannelCore, method: Any) -> Any:
        waiter = Waiter()
        core.send(method, waiter)
        self.connection._wake()
        return await waiter.wait()

    async def _call(self, method: Any) -> Any:
        return await self._sync(await self._ready(), method)

    async def close(self) -> None:
        """Close the channel (its consumers end). The handle cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        self.connection._forget_channel(self)
        core = self._core
        if core is not None and core.state is _OPEN and self.connection._up:
            try:
                with trio.move_on_after(5):
                    await self._sync(core, C.Channel.Close(200, "bye", 0, 0))
            except (ChannelClosed, ConnectionLost):
                pass
        self._on_gone(ChannelClosed(200, "channel closed by the application"), fatal=True)

    async def __aenter__(self) -> "Channel":
        return self

    async def __aexit__(self, *exc: object) -> None:
        with trio.CancelScope(shield=True):
            await self.close()

    # -- topology ----------------------------------------------------------------------------

    async def declare_exchange(self, name: str, type: str = "direct", *, durable: bool = False,
                               auto_delete: bool = False, internal: bool = False,
                               passive: bool = False,
                               arguments: dict[str, Any] | None = None) -> None:
        await self._call(C.Exchange.Declare(exchange=name, exchange_type=type, passive=passive,
                                            durable=durable, auto_delete=auto_delete,
                                            internal=internal, arguments=arguments))
        if not passive:
            self.connection._topology.add_exchange(
                name, type=type, durable=durable, auto_delete=auto_delete, internal=internal,
                arguments=arguments)

    async def delete_exchange(self, name: str, *, if_unused: bool = False) -> None:
        await self._call(C.Exchange.Delete(exchange=name, if_unused=if_unused))
        self.connection._topology.remove_exchange(name)

    async def declare_queue(self, name: str = "", *, durable: bool = False,
                            exclusive: bool = False, auto_delete: bool = False,
                            passive: bool = False,
                            arguments: dict[str, Any] | None = None) -> QueueInfo:
        ok = await self._call(C.Queue.Declare(queue=name, passive=passive, durable=durable,
                                              exclusive=exclusive, auto_delete=auto_delete,
                                              arguments=arguments))
        if not passive:
            self.connection._topology.add_queue(
                ok.queue, name, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
                arguments=arguments)
        return QueueInfo(ok.queue, ok.message_count, ok.consumer_count)

    async def delete_queue(self, name: str, *, if_unused: bool = False,
                           if_empty: bool = False) -> int:
        """Delete a queue; returns the number of messages it held."""
        ok = await self._call(C.Queue.Delete(queue=name, if_unused=if_unused,
                                             if_empty=if_empty))
        self.connection._topology.remove_queue(name)
        return int(ok.message_count)

    async def purge_queue(self, name: str) -> int:
        ok = await self._call(C.Queue.Purge(queue=name))
        return int(ok.message_count)

    async def bind_queue(self, queue: str, exchange: str, routing_key: str = "", *,
                         arguments: dict[str, Any] | None = None) -> None:
        await self._call(C.Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key,
                                      arguments=arguments))
        self.connection._topology.add_binding(queue, exchange, routing_key, arguments=arguments)

    async def unbind_queue(self, queue: str, exchange: str, routing_key: str = "", *,
                           arguments: dict[str, Any] | None = None) -> None:
        await self._call(C.Queue.Unbind(queue=queue, exchange=exchange,
                                        routing_key=routing_key, arguments=arguments))
        self.connection._topology.remove_binding(queue, exchange, routing_key)

    async def qos(self, prefetch_count: int, prefetch_size: int = 0) -> None:
        """``basic.qos`` for consumers started on this channel (kept across reconnects)."""
        self._qos = (prefetch_count, prefetch_size)
        await self._call(C.Basic.Qos(prefetch_size=prefetch_size,
                                     prefetch_count=prefetch_count))

    # -- publish -----------------------------------------------------------------------------

    async def publish(self, body: bytes, *, routing_key: str = "", exchange: str = "",
                      properties: Properties = EMPTY_PROPERTIES,
                      mandatory: bool = False) -> None:
        """Publish a message. On a ``confirms=True`` channel, return once the broker has
        confirmed it: raises :class:`Unroutable` if a ``mandatory`` message was returned,
        :class:`PublishNacked` on ``basic.nack``; a publish whose confirm was lost with the
        connection is sent again after the reconnect (at-least-once).
        Without confirms it only queues the frames for the writer (coalesced)."""
        while True:
            core = self._core
            if core is None or core.state is not _OPEN or not self.connection._up:
                core = await self._ready()
            seq = core.publish(exchange, routing_key, body, properties, mandatory)
            self.connection._wake()
            if seq is None:
                if core.queued_frames > HIGH_WATER_FRAMES:
                    await self.connection._backpressure()
                else:
                    await trio.lowlevel.checkpoint_if_cancelled()
                return
            waiter = self._confirm_waiters[seq] = Waiter()
            try:
                await waiter.wait()
                return
            except ConnectionLost:
                if not self.connection.reconnect:
                    raise
            finally:
                if self._confirm_waiters.get(seq) is waiter:
                    del self._confirm_waiters[seq]

    def publish_nowait(self, body: bytes, *, routing_key: str = "", exchange: str = "",
                       properties: Properties = EMPTY_PROPERTIES,
                       mandatory: bool = False) -> bool:
        """Queue a publish for the writer if the channel is open now and not in confirm mode
        (never waits); ``False`` if not, and nothing was queued (then use :meth:`publish`)."""
        core = self._core
        if core is None or core.state is not _OPEN or not self.connection._up \
                or core.confirm_mode:
            return False
        core.publish(exchange, routing_key, body, properties, mandatory)
        self.connection._wake()
        return True

    async def reply(self, request: Delivery, body: bytes, *,
                    properties: Properties = EMPTY_PROPERTIES) -> None:
        """Answer an RPC request: publish to its ``reply_to`` with its ``correlation_id``."""
        reply_to = request.properties.reply_to
        if not reply_to:
            raise ValueError("the request has no reply_to")
        if properties is EMPTY_PROPERTIES:
            properties = Properties(correlation_id=request.properties.correlation_id)
        elif properties.correlation_id is None:
            properties = msgspec.structs.replace(
                properties, correlation_id=request.properties.correlation_id)
        await self.publish(body, routing_key=reply_to, properties=properties)

    # -- consume -----------------------------------------------------------------------------

    async def consume(self, queue: str, *, no_ack: bool = False, exclusive: bool = False,
                      consumer_tag: str | None = None, arguments: dict[str, Any] | None = None,
                      sink: Callable[[Delivery], None] | None = None) -> Consumer:
        """``basic.consume``; iterate the returned :class:`Consumer`. With ``sink`` the reader
        task hands each delivery to ``sink`` instead (it must not block; the RPC client's
        replies go straight to the waiting call this way) and the consumer only cancels."""
        tag = consumer_tag or f"workup.{self.number}.{next(_tags)}"
        consumer = Consumer(self, queue, tag, no_ack, exclusive, arguments)
        if sink is not None:
            consumer._sink = sink
        await self._subscribe(consumer, await self._ready())
        return consumer

    async def _subscribe(self, consumer: Consumer, core: ChannelCore) -> None:
        self._consumers[consumer.consumer_tag] = consumer
        self._sinks[consumer.consumer_tag] = consumer._sink
        try:
            await self._sync(core, C.Basic.Consume(
                queue=consumer.queue, consumer_tag=consumer.consumer_tag,
                no_ack=consumer.no_ack, exclusive=consumer.exclusive,
                arguments=consumer.arguments))
        except BaseException:
            self._consumers.pop(consumer.consumer_tag, None)
            self._sinks.pop(consumer.consumer_tag, None)
            raise

    async def _cancel(self, consumer: Consumer) -> None:
        tag = consumer.consumer_tag
        try:
            core = self._core
            if core is not None and core.state is _OPEN and self.connection._up:
                await self._sync(core, C.Basic.Cancel(consumer_tag=tag))
        finally:
            self._consumers.pop(tag, None)
            self._sinks.pop(tag, None)

    # -- called by the connection (its reader task, its restore after a reconnect) -----------

    def _settle(self, delivery: Delivery, kind: int, requeue: bool) -> None:
        core = self._core
        if core is None or delivery._generation != self.connection._generation:
            return  # from a previous connection: the broker has requeued it already
        core.settle(delivery.delivery_tag, kind, requeue)
        self.connection._wake()

    def _on_confirm(self, seqs: list[int], ack: bool) -> None:
        waiters = self._confirm_waiters
        for seq in seqs:
            waiter = waiters.pop(seq, None)
            if waiter is not None:
                if ack:
                    waiter.set(None)
                else:
                    waiter.fail(PublishNacked(f"broker nacked publish {seq}"))

    def _on_return(self, message: Returned, seq: int | None) -> None:
        if seq is not None:
            waiter = self._confirm_waiters.pop(seq, None)
            if waiter is not None:
                waiter.fail(Unroutable(message.reply_code, message.reply_text,
                                       message.exchange, message.routing_key))
                return
        if self.on_return is not None:
            self.on_return(message)
        else:
            log.warning("unroutable message returned: %s %s exchange=%r routing_key=%r",
                        message.reply_code, message.reply_text, message.exchange,
                        message.routing_key)

    def _on_consumer_cancelled(self, tag: str) -> None:
        self._sinks.pop(tag, None)
        consumer = self._consumers.pop(tag, None)
        if consumer is not None:
            consumer._fail(ConsumerCancelled(f"the broker cancelled consumer {tag} "
                                             f"(queue {consumer.queue!r} deleted?)"))

    def _on_gone(self, error: BaseException, fatal: bool) -> None:
        """The broker channel is gone: fail what waits on it. ``fatal``: consumers end too
        (broker channel.close, connection closed for good); otherwise they wait for the
        reconnect."""
        waiters = list(self._confirm_waiters.values())
        self._confirm_waiters.clear()
        for waiter in waiters:
            waiter.fail(error)
        consumers = list(self._consumers.values())
        if fatal:
            self._consumers.clear()
            self._sinks.clear()
        closed_by_us = self._closed or self.connection._closing
        for consumer in consumers:
            if fatal and closed_by_us:
                consumer._finish()  # iteration just ends
            elif fatal:
                consumer._fail(error)
            else:
                consumer._drop_buffered()
        self._core = None
        for hook in self._gone_hooks:
            hook(error, fatal)

    async def _replay(self, method: Any) -> Any:
        """One topology step on the connection's replay channel, (re-)opened if an earlier
        step closed it: a step the broker refuses closes only this channel."""
        core = self._core
        if core is None or core.state is not _OPEN:
            await self._open()
            core = self._core
            assert core is not None
        try:
            return await self._sync(core, method)
        except ChannelClosed:
            self._core = None
            raise

    async def _end_replay(self, close: Any) -> None:
        core = self._core
        if core is not None and core.state is _OPEN:
            await self._sync(core, close)

    def _rename_queue(self, old: str, new: str) -> None:
        """A server-named queue got a new name when the reconnect declared it again."""
        for consumer in self._consumers.values():
            if consumer.queue == old:
                consumer.queue = new

    async def _restore_consumers(self) -> None:
        """After a reconnect (channel open again, topology restored): consume again."""
        if self._core is None or self._core.state is not _OPEN:
            await self._open()  # a failed topology step may have closed it
        core = self._core
        assert core is not None
        for consumer in list(self._consumers.values()):
            await self._subscribe(consumer, core)

