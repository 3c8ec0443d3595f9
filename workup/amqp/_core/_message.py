"""Message properties (with their content-header codec) and the received-message types.

The content header is on the hot path of every message, so it is encoded and decoded here
directly (field tables still go through pamqp); ``tests/amqp/test_frames.py`` checks it
byte-for-byte against pamqp's own ``ContentHeader``.
"""

from __future__ import annotations

import struct
from typing import Any

import msgspec
from pamqp import decode as _pdecode  # noqa: F401 - used by the generated decoder
from pamqp import encode as _pencode

from ._errors import ProtocolError

__all__ = ["Properties", "RawDelivery", "Returned", "ACK", "NACK", "REJECT", "encode_properties",
           "decode_properties"]


class Properties(msgspec.Struct, frozen=True):
    """The ``basic`` content properties (``type`` is AMQP's message type name)."""

    content_type: str | None = None
    content_encoding: str | None = None
    headers: dict[str, Any] | None = None
    delivery_mode: int | None = None  # 1 transient, 2 persistent
    priority: int | None = None
    correlation_id: str | None = None
    reply_to: str | None = None
    expiration: str | None = None
    message_id: str | None = None
    timestamp: int | None = None  # POSIX seconds
    type: str | None = None
    user_id: str | None = None
    app_id: str | None = None


EMPTY_PROPERTIES = Properties()

# (flag bit, kind) in wire order; kinds: s shortstr, t table, o octet, q 64-bit timestamp
_FIELDS = (
    (0x8000, "s"), (0x4000, "s"), (0x2000, "t"), (0x1000, "o"), (0x0800, "o"), (0x0400, "s"),
    (0x0200, "s"), (0x0100, "s"), (0x0080, "s"), (0x0040, "q"), (0x0020, "s"), (0x0010, "s"),
    (0x0008, "s"),
)
_H = struct.Struct(">H")
# shared with _frames.py: the one 64-bit field codec and the one short-string encoder
UINT64 = struct.Struct(">Q")


def encode_shortstr(value: str) -> bytes:
    """An AMQP short string: one length byte, then at most 255 bytes of UTF-8."""
    raw = value.encode()
    if len(raw) > 255:
        raise ValueError(f"AMQP short string longer than 255 bytes: {value[:40]!r}...")
    return bytes((len(raw),)) + raw


_L = struct.Struct(">I")
_D = struct.Struct(">d")


def encode_table(table: dict[str, Any]) -> bytes:
    """An AMQP field table. Unlike pamqp (which sends a Python float as a 32-bit float, so a
    deadline of 1.7e9 s would be off by a minute) floats are sent as doubles."""
    parts = []
    for key, value in sorted(table.items()):  # sorted like pamqp: same bytes for same table
        parts.append(encode_shortstr(key))
        parts.append(_encode_value(value))
    data = b"".join(parts)
    return _L.pack(len(data)) + data


def _encode_value(value: Any) -> bytes:
    if type(value) is str:
        raw = value.encode()
        return b"S" + _L.pack(len(raw)) + raw
    if type(value) is float:
        return b"d" + _D.pack(value)
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, (list, tuple)):
        data = b"".join(_encode_value(v) for v in value)
        return b"A" + _L.pack(len(data)) + data
    if isinstance(value, (bytes, bytearray)):
        return b"x" + _L.pack(len(value)) + bytes(value)
    return _pencode.encode_table_value(value)


def decode_table(data: bytes, pos: int) -> tuple[int, dict[str, Any]]:
    """The field table at ``pos``: (bytes read, table). Long strings and doubles, all that a
    request's headers carry, are read here in one pass; a table holding any other kind of value
    is handed whole to pamqp (same values: a long string that is not UTF-8 stays bytes)."""
    (size,) = _L.unpack_from(data, pos)
    end = pos + 4 + size
    if end > len(data):
        raise ValueError("field table longer than its frame")
    i = pos + 4
    table: dict[str, Any] = {}
    while i < end:
        n = data[i]
        key = data[i + 1:i + 1 + n].decode()
        i += 1 + n
        kind = data[i]
        if kind == 0x53:  # S
            (length,) = _L.unpack_from(data, i + 1)
            raw = data[i + 5:i + 5 + length]
            i += 5 + length
            try:
                table[key] = raw.decode()
            except UnicodeDecodeError:
                table[key] = raw
        elif kind == 0x64:  # d
            (table[key],) = _D.unpack_from(data, i + 1)
            i += 9
        else:
            found: tuple[int, dict[str, Any]] = _pdecode.field_table(data[pos:])
            return found
    if i != end:
        raise ValueError("field table entries overrun its size")
    return 4 + size, table


def _compile_encoder() -> Any:
    """``encode_properties``, unrolled from ``_FIELDS`` (like ``dataclasses`` builds its
    ``__init__``): no loop, no tuple, one test per field. It runs for every message."""
    emit = {"s": "encode_shortstr(v)", "o": "bytes((v,))", "t": "encode_table(v)", "q": "UINT64.pack(v)"}
    lines = ["def encode_properties(p):",
             "    if p is EMPTY_PROPERTIES:",
             "        return b'\\x00\\x00'",
             "    flags = 0",
             "    out = [b'']"]
    for name, (bit, kind) in zip(Properties.__struct_fields__, _FIELDS):
        lines += [f"    v = p.{name}",
                  "    if v is not None:",
                  f"        flags |= {bit}",
                  f"        out.append({emit[kind]})"]
    lines += ["    out[0] = _H.pack(flags)", "    return b''.join(out)"]
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), globals(), namespace)  # noqa: S102 - fixed, generated source
    function = namespace["encode_properties"]
    function.__doc__ = "Property flags + property list, as they follow body-size in a header."
    return function


encode_properties = _compile_encoder()


def _compile_decoder() -> Any:
    """``decode_properties``, unrolled from ``_FIELDS`` the same way. A truncated property list
    shows up as a position past the end (checked once, at the end)."""
    read = {
        "s": ["        n = data[pos]", "        {v} = data[pos + 1:pos + 1 + n].decode()",
              "        pos += 1 + n"],
        "o": ["        {v} = data[pos]", "        pos += 1"],
        "t": ["        n, {v} = decode_table(data, pos)", "        pos += n"],
        "q": ["        ({v},) = UINT64.unpack_from(data, pos)", "        pos += 8"],
    }
    names = Properties.__struct_fields__
    lines = ["def decode_properties(data, offset):",
             "    (flags,) = _H.unpack_from(data, offset)",
             "    if not flags:",
             "        return EMPTY_PROPERTIES",
             "    if flags & 0x0007:",
             "        raise ProtocolError('unsupported content-header property flags', 502)",
             "    pos = offset + 2"]
    for name, (bit, kind) in zip(names, _FIELDS):
        lines += [f"    if flags & {bit}:"]
        lines += [line.format(v=name) for line in read[kind]]
        lines += ["    else:", f"        {name} = None"]
    lines += ["    if pos != len(data):",
              "        raise ProtocolError('content header length does not match its "
              "properties', 502)",
              f"    return Properties({', '.join(names)})"]
    namespace: dict[str, Any] = {}
    exec("\n".join(lines), globals(), namespace)  # noqa: S102 - fixed, generated source
    return namespace["decode_properties"]


_decode_properties = _compile_decoder()


def decode_properties(data: bytes, offset: int) -> Properties:
    """Decode the property flags and list starting at ``offset`` of a content-header payload."""
    try:
        return _decode_properties(data, offset)  # type: ignore[no-any-return]
    except (struct.error, IndexError, UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"malformed content header: {exc}", 502) from None


# the ``kind`` of a settlement (:meth:`ChannelCore.settle`)
ACK, NACK, REJECT = 0, 1, 2


class RawDelivery:
    """A message the broker delivered (``basic.deliver`` + header + body), as a plain value.
    The shell's ``workup.amqp.Delivery`` subclasses it with ``ack``/``nack``/``reject``; a
    sans-IO user settles with :meth:`ChannelCore.settle` and the ``delivery_tag``."""

    __slots__ = ("body", "properties", "exchange", "routing_key", "delivery_tag",
                 "redelivered", "consumer_tag")

    def __init__(self, consumer_tag: str, delivery_tag: int, redelivered: bool, exchange: str,
                 routing_key: str) -> None:
        self.consumer_tag = consumer_tag
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = b""
        self.properties = EMPTY_PROPERTIES

    def __repr__(self) -> str:
        return (f"<Delivery tag={self.delivery_tag} exchange={self.exchange!r} "
                f"routing_key={self.routing_key!r} {len(self.body)} bytes>")


class Returned:
    """A ``mandatory`` message the broker could not route (``basic.return``)."""

    __slots__ = ("reply_code", "reply_text", "exchange", "routing_key", "body", "properties")

    def __init__(self, reply_code: int, reply_text: str, exchange: str, routing_key: str) -> None:
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.exchange = exchange
        self.routing_key = routing_key
        self.body = b""
        self.properties = EMPTY_PROPERTIES
