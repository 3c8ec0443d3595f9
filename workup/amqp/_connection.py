"""The trio shell around :class:`ConnectionCore`: a socket, a reader task, a writer task
that sends everything queued since its last write in one ``send_all``, a heartbeat task,
and a supervisor that reconnects with backoff and restores channels, topology and consumers
(:meth:`Connection._restore`, before the new session counts as up).
"""

from __future__ import annotations

import logging
import random
import ssl
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Awaitable, Callable, Union

import trio
from pamqp import commands as C

from ._channel import Channel
from ._core._errors import AMQPError, ChannelClosed, ConnectionClosed, ConnectionLost, ProtocolError
from ._core._events import (Blocked, ChannelClosedByBroker, ConnectionClosedByBroker,
                      ConnectionCloseOk, ConnectionOpened, ConsumerCancelledByBroker, Delivered,
                      MessageReturned, MethodReply, PublishConfirmed, RequestsAbandoned,
                      Unblocked)
from ._core._params import ConnectionParams, parse_url
from ._core._protocol import ConnectionCore
from ._delivery import Delivery
from ._tls import client_context
from ._core._topology import Topology

__all__ = ["Connection", "connect"]

log = logging.getLogger("workup.amqp")
Stream = Union[trio.SocketStream, "trio.SSLStream[trio.SocketStream]"]   # amqp:// or amqps://

# broker connection.close codes after which reconnecting makes sense (320 CONNECTION_FORCED:
# an operator or a node shutdown closed us); others (403, 530, 50x) would fail again
RECONNECT_CODES = frozenset({320})
_REPLAY_CLOSE = C.Channel.Close(200, "topology restored", 0, 0)


@asynccontextmanager
async def connect(url: str | ConnectionParams, *, name: str | None = None,
                  reconnect: bool = True, reconnect_delay: float = 0.1,
                  reconnect_max_delay: float = 5.0) -> AsyncIterator["Connection"]:
    """Open a connection (raises if the first attempt fails) and run it until the block ends."""
    params = parse_url(url) if isinstance(url, str) else url
    conn = Connection(params, name=name, reconnect=reconnect, reconnect_delay=reconnect_delay,
                      reconnect_max_delay=reconnect_max_delay)
    stream, core = await conn._handshake()
    try:
        async with trio.open_nursery() as nursery:
            conn._nursery = nursery
            await nursery.start(conn._run, stream, core)
            try:
                yield conn
            finally:
                with trio.CancelScope(shield=True):
                    await conn.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # only the block's own exception can be in here (our tasks do not raise): unwrap it
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


class Connection:
    def __init__(self, params: ConnectionParams, *, name: str | None = None,
                 reconnect: bool = True, reconnect_delay: float = 0.1,
                 reconnect_max_delay: float = 5.0) -> None:
        self.params = params
        self.name = name
        self.reconnect = reconnect
        self._delay = (reconnect_delay, reconnect_max_delay)
        self._core: ConnectionCore | None = None
        self._stream: Stream | None = None
        self._tls: ssl.SSLContext | None = None
        self._generation = 0
        self._up = False
        self._up_event = trio.Event()
        self._wake_event = trio.Event()
        self._closing = False
        self._error: BaseException | None = None  # set once the connection is dead for good
        self._closed_event = trio.Event()
        self._session_scope = trio.CancelScope()
        self._lost: BaseException | None = None
        self._close_ok = trio.Event()
        self._channels: dict[int, Channel] = {}
        self._topology = Topology()
        self._last_recv = self._last_send = 0.0
        self._nursery: trio.Nursery | None = None
        self._drained: trio.Event | None = None  # publishers waiting for the writer
        self.blocked: str | None = None
        self.reconnects = 0

    # -- public ------------------------------------------------------------------------------

    async def channel(self, *, confirms: bool = False, prefetch: int | None = None) -> Channel:
        """Open a channel; ``confirms`` turns on publisher confirms (publish waits for them)."""
        core = await self._wait_up()
        number = self._free_channel_number(core)
        channel = Channel(self, number, confirms)
        self._channels[number] = channel
        try:
            await channel._open()
            if prefetch is not None:
                await channel.qos(prefetch)
        except BaseException:
            self._channels.pop(number, None)
            raise
        return channel

    @property
    def is_open(self) -> bool:
        return self._up

    @property
    def server_properties(self) -> dict[str, object]:
        return self._core.server_properties if self._core else {}

    async def wait_closed(self) -> BaseException | None:
        """Wait until the connection is closed for good; the reason (None after ``aclose``)."""
        await self._closed_event.wait()
        return None if self._closing else self._error

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        core = self._core
        if self._up and core is not None:
            core.close()
            self._wake()
            with trio.move_on_after(2):
                await self._close_ok.wait()
        self._die(ConnectionClosed(200, "connection closed by the application"))

    # -- supervisor --------------------------------------------------------------------------

    async def _run(self, stream: Stream, core: ConnectionCore,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        delay = self._delay[0]
        while True:
            started = trio.current_time()
            await self._session(stream, core, restore=self._generation > 0,
                                task_status=task_status)
            task_status = trio.TASK_STATUS_IGNORED
            if self._closing or self._error is not None:
                return
            log.warning("AMQP connection lost (%s); reconnecting", self._lost)
            if trio.current_time() - started > 10:
                delay = self._delay[0]  # it was up for a while: start over quickly
            while True:
                await trio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, self._delay[1])
                if self._error is not None:
                    return
                try:
                    stream, core = await self._handshake()
                    self.reconnects += 1
                    break
                except (OSError, AMQPError, trio.TooSlowError) as exc:
                    if isinstance(exc, ProtocolError):
                        self._die(exc)
                        return
                    log.warning("AMQP reconnect failed: %s", exc)

    async def _handshake(self) -> tuple[Stream, ConnectionCore]:
        p = self.params
        core = ConnectionCore(p, self.name, delivery_type=Delivery)
        with trio.fail_after(p.connect_timeout):
            try:
                tcp = await trio.open_tcp_stream(p.host, p.port)
            except OSError as exc:
                raise ConnectionLost(f"cannot connect to {p.host}:{p.port}: {exc}") from None
            stream: Stream = await self._start_tls(tcp) if p.tls else tcp
            try:
                core.start()
                while True:
                    data = core.data_to_send()
                    try:
                        if data:
                            await stream.send_all(data)
                        chunk = await stream.receive_some(65536)
                    except (trio.BrokenResourceError, OSError) as exc:
                        # e.g. TLS 1.3: a broker that wants a client certificate says so only
                        # after the TLS handshake, as an alert on our first read
                        raise ConnectionLost(f"connection to {p.host}:{p.port} broke during the "
                                             f"handshake: {_cause(exc)}") from None
                    if not chunk:
                        raise ConnectionLost(
                            "broker closed the socket during the handshake (bad credentials?)")
                    for event in core.receive_data(chunk):
                        if isinstance(event, ConnectionClosedByBroker):
                            raise ConnectionClosed(event.reply_code, event.reply_text,
                                                   event.class_id, event.method_id)
                        if isinstance(event, ConnectionOpened):
                            return stream, core
            except BaseException:
                with trio.CancelScope(shield=True):
                    await _abort(stream, core)
                raise

    async def _start_tls(self, tcp: trio.SocketStream) -> "trio.SSLStream[trio.SocketStream]":
        p = self.params
        if self._tls is None:
            self._tls = client_context(p)
        stream = trio.SSLStream(tcp, self._tls, server_hostname=p.server_name or p.host)
        try:
            await stream.do_handshake()
        except (trio.BrokenResourceError, ssl.SSLError) as exc:
            with trio.CancelScope(shield=True):
                await tcp.aclose()
            raise ConnectionLost(f"TLS handshake with {p.host}:{p.port} failed: {_cause(exc)}") from None
        return stream

    async def _session(self, stream: Stream, core: ConnectionCore, restore: bool,
                       task_status: trio.TaskStatus[None]) -> None:
        self._generation += 1
        self._stream, self._core, self._lost = stream, core, None
        self._last_recv = self._last_send = trio.current_time()
        self._wake_event = trio.Event()
        self._session_scope = scope = trio.CancelScope()
        with scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._reader, stream, core)
                nursery.start_soon(self._writer, stream, core)
                nursery.start_soon(self._heartbeat, core)
                if restore:
                    try:
                        await self._restore()
                    except (AMQPError, trio.TooSlowError) as exc:
                        self._lose(ConnectionLost(f"restoring after reconnect failed: {exc}"))
                if self._lost is None:
                    self._set_up()
                task_status.started()
        # the session ended: the connection is lost (or being closed)
        self._release_publishers()
        self._up = False
        self._up_event = trio.Event()
        with trio.CancelScope(shield=True):
            await _abort(stream, core)
        error = self._lost or ConnectionLost("connection lost")
        fatal = self._closing or not self.reconnect or (
            isinstance(error, (ConnectionClosed, ProtocolError))
            and getattr(error, "reply_code", 0) not in RECONNECT_CODES)
        _fail_requests(core, error if fatal else ConnectionLost(str(error)))
        if fatal and self._error is None:
            self._die(error)
        else:
            for channel in list(self._channels.values()):
                channel._on_gone(ConnectionLost(str(error)), fatal=False)

    # -- restore after a reconnect ----------------------------------------------------------

    async def _restore(self, timeout: float = 30.0) -> None:
        """Re-open the channels, declare the recorded topology again, then re-register the
        consumers (their queues exist again by then)."""
        with trio.fail_after(timeout):
            channels = sorted(self._channels.values(), key=lambda c: c.number)
            for channel in channels:
                await channel._open()
            await self._replay_topology()
            for channel in channels:
                await channel._restore_consumers()

    async def _replay_topology(self) -> None:
        """Declare again what was declared, on a channel of its own (a step the broker now
        refuses closes only that channel: it is logged and the replay goes on)."""
        replay = Channel(self, self._free_channel_number(self._require_core()), confirms=False)
        # not registered in self._channels: invisible to users and to the reader's routing
        for kind in ("exchange", "queue", "bind"):
            for _, key, kw in self._topology.steps(kind):
                try:
                    reply = await replay._replay(_declare_method(kind, key, kw))
                except ChannelClosed as exc:
                    log.error("could not restore %s %r after reconnect: %s", kind, key, exc)
                    continue
                if kind == "queue" and kw["queue"] == "":  # server-named: it has a new name
                    self._topology.rename_queue(key, reply.queue)
                    for channel in self._channels.values():
                        channel._rename_queue(key, reply.queue)
        await replay._end_replay(_REPLAY_CLOSE)

    def _free_channel_number(self, core: ConnectionCore) -> int:
        number = next((n for n in range(1, core.channel_max + 1)
                       if n not in self._channels and core.channel_free(n)), None)
        if number is None:
            raise AMQPError(f"all {core.channel_max} channels of the connection are in use")
        return number

    def _set_up(self) -> None:
        self._up = True
        self._up_event.set()

    def _die(self, error: BaseException) -> None:
        """The connection is closed for good: everything waiting on it fails."""
        if self._error is None:
            self._error = error
        self._up = False
        self._up_event.set()  # wake waiters so they see the error
        if self._core is not None:
            _fail_requests(self._core, self._error)
        for channel in list(self._channels.values()):
            channel._on_gone(self._error, fatal=True)
        self._session_scope.cancel()
        self._closed_event.set()

    def _lose(self, error: BaseException) -> None:
        if self._lost is None:
            self._lost = error
        self._session_scope.cancel()

    # -- used by channels --------------------------------------------------------------------

    async def _wait_up(self) -> ConnectionCore:
        while not self._up:
            if self._error is not None:
                raise self._error
            await self._up_event.wait()
        if self._error is not None:
            raise self._error
        assert self._core is not None
        return self._core

    def _require_core(self) -> ConnectionCore:
        if self._error is not None:
            raise self._error
        if self._core is None:
            raise ConnectionLost("not connected")
        return self._core

    def _wake(self) -> None:
        event = self._wake_event
        if not event.is_set():
            event.set()

    async def _backpressure(self) -> None:
        """Wait until the writer has sent what is queued (the socket, i.e. the broker, is
        slower than the publishers, or the broker blocked us)."""
        if self._drained is None:
            self._drained = trio.Event()
        drained = self._drained
        self._wake()
        await drained.wait()

    def _release_publishers(self) -> None:
        if self._drained is not None:
            self._drained.set()
            self._drained = None

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Run a helper task (e.g. an RPC client's timer) for the life of the connection."""
        if self._nursery is None:
            raise RuntimeError("the connection is not running (use `async with connect()`)")
        self._nursery.start_soon(fn)

    def _forget_channel(self, channel: Channel) -> None:
        if self._channels.get(channel.number) is channel:
            del self._channels[channel.number]

    # -- session tasks -----------------------------------------------------------------------

    async def _writer(self, stream: Stream, core: ConnectionCore) -> None:
        try:
            while True:
                await self._wake_event.wait()
                self._wake_event = trio.Event()
                data = core.data_to_send()
                if data:
                    await stream.send_all(data)
                    self._last_send = trio.current_time()
                self._release_publishers()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._lose(ConnectionLost(f"write failed: {exc}"))

    async def _reader(self, stream: Stream, core: ConnectionCore) -> None:
        channels = self._channels
        generation = self._generation
        try:
            while True:
                data = await stream.receive_some(262144)
                if not data:
                    self._lose(ConnectionLost("the broker closed the connection"))
                    return
                self._last_recv = trio.current_time()
                for event in core.receive_data(data):
                    if type(event) is Delivered:
                        channel = channels.get(event.channel)
                        if channel is None:
                            continue
                        # a Delivery: the core builds the delivery_type we gave it
                        delivery: Delivery = event.delivery  # type: ignore[assignment]
                        delivery._settler = channel
                        delivery._generation = generation
                        sink = channel._sinks.get(delivery.consumer_tag)
                        if sink is not None:
                            sink(delivery)
                        else:
                            log.warning("delivery for unknown consumer %s",
                                        delivery.consumer_tag)
                    else:
                        self._dispatch(event)
                if core.wants_write:
                    self._wake()
        except ProtocolError as exc:
            log.error("AMQP protocol error from the broker: %s", exc)
            core.close(exc.reply_code, exc.reply_text)
            with trio.move_on_after(1):
                try:
                    await stream.send_all(core.data_to_send())
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                    pass
            self._lose(exc)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._lose(ConnectionLost(f"read failed: {exc}"))

    def _dispatch(self, event: object) -> None:
        channel = self._channels.get(getattr(event, "channel", 0))
        if type(event) is MethodReply:
            if event.token is not None:
                event.token.set(event.method)
        elif type(event) is PublishConfirmed:
            if channel is not None:
                channel._on_confirm(event.seqs, event.ack)
        elif type(event) is MessageReturned:
            if channel is not None:
                channel._on_return(event.message, event.seq)
        elif type(event) is ChannelClosedByBroker:
            error = ChannelClosed(event.reply_code, event.reply_text, event.class_id,
                                  event.method_id)
            for token in event.tokens:
                token.fail(error)
            if channel is not None:
                channel._on_gone(error, fatal=True)
        elif type(event) is RequestsAbandoned:
            error = ChannelClosed(200, "channel closed by the application")
            for token in event.tokens:
                if token is not None:
                    token.fail(error)
        elif type(event) is ConsumerCancelledByBroker:
            if channel is not None:
                channel._on_consumer_cancelled(event.consumer_tag)
        elif type(event) is ConnectionClosedByBroker:
            self._lose(ConnectionClosed(event.reply_code, event.reply_text, event.class_id,
                                        event.method_id))
            self._wake()  # the close-ok is queued; the session ends once it is written
        elif type(event) is ConnectionCloseOk:
            self._close_ok.set()
        elif type(event) is Blocked:
            self.blocked = event.reason
            log.warning("broker blocked the connection: %s", event.reason)
        elif type(event) is Unblocked:
            self.blocked = None

    async def _heartbeat(self, core: ConnectionCore) -> None:
        interval = core.heartbeat
        if not interval:
            return
        while True:
            await trio.sleep(interval / 2)
            now = trio.current_time()
            if now - self._last_send >= interval / 2:
                core.send_heartbeat()
                self._wake()
            if now - self._last_recv > interval * 2:
                self._lose(ConnectionLost(f"no data from the broker for {interval * 2} s "
                                          f"(missed heartbeats)"))
                return


def _fail_requests(core: ConnectionCore, error: BaseException) -> None:
    """Fail every synchronous request still waiting for its reply on ``core``'s channels."""
    for channel in core.channels.values():
        for token in channel.pending_tokens():
            if token is not None:
                token.fail(error)


def _cause(exc: BaseException) -> BaseException:
    """What broke a stream: trio's BrokenResourceError wraps the OS or TLS error."""
    return exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc


def _declare_method(kind: str, key: Any, kw: dict[str, Any]) -> Any:
    """The declare (or bind) method that replays one recorded :class:`Topology` step."""
    if kind == "exchange":
        return C.Exchange.Declare(exchange=key, exchange_type=kw["type"], durable=kw["durable"],
                                  auto_delete=kw["auto_delete"], internal=kw["internal"],
                                  arguments=kw["arguments"])
    if kind == "queue":
        return C.Queue.Declare(queue=kw["queue"], durable=kw["durable"],
                               exclusive=kw["exclusive"], auto_delete=kw["auto_delete"],
                               arguments=kw["arguments"])
    queue, exchange, routing_key = key
    return C.Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key,
                        arguments=kw["arguments"])


async def _abort(stream: Stream, core: ConnectionCore | None) -> None:
    try:
        if core is not None:
            data = core.data_to_send()
            if data:
                with trio.move_on_after(0.5):
                    await stream.send_all(data)
        await stream.aclose()
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
