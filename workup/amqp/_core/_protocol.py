"""The connection's state machine, without I/O (the h11 shape for AMQP 0-9-1).

    core = ConnectionCore(params)
    core.start()                          # protocol header queued
    events = core.receive_data(chunk)     # bytes from the socket, cut anywhere
    sock.send_all(core.data_to_send())    # everything queued since the last call

Handshake: start → start-ok (PLAIN, or EXTERNAL over TLS) → tune → tune-ok + open → open-ok (``ConnectionOpened``).
Channels are :class:`ChannelCore` objects sharing the output buffer. A malformed or
out-of-place frame raises :class:`ProtocolError`; the shell then closes the connection.
"""

from __future__ import annotations

import enum
import platform
from typing import Any

from pamqp import commands as C

from ._channel import ChannelCore, ChannelState
from ._errors import ProtocolError
from ._events import (Blocked, ConnectionClosedByBroker, ConnectionCloseOk, ConnectionOpened,
                      Event, Unblocked)
from ._frames import (HEARTBEAT, HEARTBEAT_FRAME, METHOD, PROTOCOL_HEADER, FrameReader,
                      encode_method)
from ._message import RawDelivery
from ._params import ConnectionParams

__all__ = ["ConnectionCore", "ConnectionState", "negotiate"]


class ConnectionState(enum.Enum):
    AWAIT_START = "await-start"
    AWAIT_TUNE = "await-tune"
    AWAIT_OPEN_OK = "await-open-ok"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


CAPABILITIES = {
    "publisher_confirms": True,
    "consumer_cancel_notify": True,
    "basic.nack": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


def negotiate(client: int, server: int) -> int:
    """Tune negotiation: 0 means "no limit", otherwise the smaller value wins."""
    if client == 0 or server == 0:
        return max(client, server)
    return min(client, server)


class ConnectionCore:
    def __init__(self, params: ConnectionParams, name: str | None = None, *,
                 delivery_type: type[RawDelivery] = RawDelivery) -> None:
        self.params = params
        self.state = ConnectionState.AWAIT_START
        self.frame_max = params.frame_max or 131072
        self.channel_max = params.channel_max or 65535
        self.heartbeat = params.heartbeat
        self.server_properties: dict[str, Any] = {}
        self.channels: dict[int, ChannelCore] = {}
        # a subclass of RawDelivery: the shell builds its settleable Delivery with no copy
        self._reader = FrameReader(self.frame_max, delivery_type)
        self._out: list[bytes] = []
        self._name = name

    # -- output ------------------------------------------------------------------------------

    def start(self) -> None:
        self._out.append(PROTOCOL_HEADER)

    def data_to_send(self) -> bytes:
        for channel in self.channels.values():
            if channel.acks_pending:
                channel.flush_acks()
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    @property
    def queued_frames(self) -> int:
        """Frames (or frame groups) queued and not yet taken by :meth:`data_to_send`."""
        return len(self._out)

    @property
    def wants_write(self) -> bool:
        return bool(self._out) or any(c.acks_pending for c in self.channels.values())

    def send_heartbeat(self) -> None:
        self._out.append(HEARTBEAT_FRAME)

    def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        if self.state in (ConnectionState.CLOSING, ConnectionState.CLOSED):
            return
        self.state = ConnectionState.CLOSING
        self._out.append(encode_method(0, C.Connection.Close(reply_code, reply_text[:255], 0, 0)))

    def channel_free(self, number: int) -> bool:
        """Never used, or closed (a channel still closing cannot be opened again yet)."""
        channel = self.channels.get(number)
        return channel is None or channel.state is ChannelState.CLOSED

    def open_channel(self, number: int, token: Any = None) -> ChannelCore:
        """Start opening channel ``number``; its ``open-ok`` comes back as a ``MethodReply``."""
        if self.state is not ConnectionState.OPEN:
            raise ProtocolError(f"connection is {self.state.value}", 504)
        if not 0 < number <= self.channel_max:
            raise ValueError(f"channel number {number} outside 1..{self.channel_max}")
        if not self.channel_free(number):
            raise ValueError(f"channel {number} is already in use")
        channel = ChannelCore(number, self._out, self.frame_max, self._reader.delivery_type)
        self.channels[number] = channel
        channel.open(token)
        return channel

    # -- input -------------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray) -> list[Event]:
        events: list[Event] = []
        channels = self.channels
        for ftype, number, value in self._reader.feed(data):
            if number:
                channel = channels.get(number)
                if channel is None or channel.state is ChannelState.CLOSED:
                    raise ProtocolError(f"frame for channel {number}, which is not open", 504)
                channel.receive(ftype, value, events)
            elif ftype == METHOD:
                self._receive_connection_method(value, events)
            elif ftype != HEARTBEAT:
                raise ProtocolError(f"content frame (type {ftype}) on channel 0", 504)
        return events

    def _receive_connection_method(self, method: Any, events: list[Event]) -> None:
        state = self.state
        if isinstance(method, C.Connection.Close):
            self.state = ConnectionState.CLOSED
            self._out.append(encode_method(0, C.Connection.CloseOk()))
            events.append(ConnectionClosedByBroker(method.reply_code or 0, method.reply_text or "",
                                                   method.class_id or 0, method.method_id or 0))
        elif isinstance(method, C.Connection.CloseOk) and state is ConnectionState.CLOSING:
            self.state = ConnectionState.CLOSED
            events.append(ConnectionCloseOk())
        elif state is ConnectionState.CLOSING:
            return  # after our close only close/close-ok matter
        elif isinstance(method, C.Connection.Start) and state is ConnectionState.AWAIT_START:
            self._on_start(method)
        elif isinstance(method, C.Connection.Tune) and state is ConnectionState.AWAIT_TUNE:
            self._on_tune(method)
        elif isinstance(method, C.Connection.OpenOk) and state is ConnectionState.AWAIT_OPEN_OK:
            self.state = ConnectionState.OPEN
            events.append(ConnectionOpened(self.frame_max, self.channel_max, self.heartbeat,
                                           self.server_properties))
        elif isinstance(method, C.Connection.Blocked) and state is ConnectionState.OPEN:
            events.append(Blocked(method.reason))
        elif isinstance(method, C.Connection.Unblocked) and state is ConnectionState.OPEN:
            events.append(Unblocked())
        else:
            raise ProtocolError(f"unexpected {method.name} while {state.value}", 503)

    def _on_start(self, start: C.Connection.Start) -> None:
        if (start.version_major, start.version_minor) != (0, 9):
            raise ProtocolError(f"broker speaks AMQP {start.version_major}."
                                f"{start.version_minor}, not 0-9-1", 505)
        p = self.params
        mechanisms = start.mechanisms.split() if isinstance(start.mechanisms, str) else []
        if p.auth_mechanism not in mechanisms:
            raise ProtocolError(f"broker does not offer {p.auth_mechanism} authentication "
                                f"(offers {start.mechanisms!r})", 503)
        self.server_properties = dict(start.server_properties or {})
        props: dict[str, Any] = {
            "product": "workup.amqp",
            "platform": f"Python {platform.python_version()} (trio)",
            "capabilities": CAPABILITIES,
        }
        if self._name:
            props["connection_name"] = self._name
        # EXTERNAL: an empty response, the broker takes the name from our TLS certificate
        response = "" if p.auth_mechanism == "EXTERNAL" else f"\0{p.username}\0{p.password}"
        self._out.append(encode_method(0, C.Connection.StartOk(
            client_properties=props, mechanism=p.auth_mechanism, response=response, locale="en_US")))
        self.state = ConnectionState.AWAIT_TUNE

    def _on_tune(self, tune: C.Connection.Tune) -> None:
        p = self.params
        self.channel_max = negotiate(p.channel_max, tune.channel_max) or 65535
        self.frame_max = negotiate(p.frame_max, tune.frame_max) or 131072
        self.heartbeat = 0 if p.heartbeat == 0 else negotiate(p.heartbeat, tune.heartbeat)
        if self.frame_max < 4096:
            raise ProtocolError(f"broker frame_max {tune.frame_max} is below the minimum", 503)
        self._reader.frame_max = self.frame_max
        self._out.append(encode_method(0, C.Connection.TuneOk(
            self.channel_max, self.frame_max, self.heartbeat)))
        self._out.append(encode_method(0, C.Connection.Open(p.virtual_host)))
        self.state = ConnectionState.AWAIT_OPEN_OK
