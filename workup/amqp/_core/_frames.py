"""AMQP 0-9-1 framing: bytes in → frames out (any chunking), frames in → bytes out.

pamqp is the codec for method frames; the few frames on the hot path of every message
(``basic.deliver`` in, ``basic.publish`` + header + body and ``basic.ack`` out) are packed
here directly, and the tests compare them byte-for-byte with pamqp.
"""

from __future__ import annotations

import struct
from typing import Any

from pamqp import commands as _commands
from pamqp import frame as _pframe
from pamqp.base import Frame as Method

from ._errors import ProtocolError
from ._message import (UINT64, Properties, RawDelivery, decode_properties, encode_properties,
                       encode_shortstr)

__all__ = ["FrameReader", "Method", "METHOD", "HEADER", "BODY", "HEARTBEAT",
           "encode_method", "encode_publish", "encode_ack", "HEARTBEAT_FRAME", "PROTOCOL_HEADER"]

METHOD, HEADER, BODY, HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"

_FRAME_HEAD = struct.Struct(">BHI")
_METHOD_ID = struct.Struct(">I")
_HEADER_HEAD = struct.Struct(">HHQ")
_DELIVER_ID = 0x003C003C
_ACK = struct.Struct(">BHIIQB")


class FrameReader:
    """Accumulates received bytes and cuts them into frames.

    ``feed(data)`` returns the complete frames as ``(type, channel, value)`` tuples: for a
    method frame a pamqp method object (a ``delivery_type`` instance, by default
    :class:`RawDelivery`, for ``basic.deliver``), for a
    header ``(body_size, Properties)``, for a body the bytes, for a heartbeat ``None``.
    Anything malformed raises :class:`ProtocolError`; after that the reader is unusable.
    """

    def __init__(self, frame_max: int = 131072,
                 delivery_type: type[RawDelivery] = RawDelivery) -> None:
        self.frame_max = frame_max
        self.delivery_type = delivery_type
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray) -> list[tuple[int, int, Any]]:
        buf = self._buf
        buf += data
        frames: list[tuple[int, int, Any]] = []
        pos, size = 0, len(buf)
        while size - pos >= 7:
            ftype, channel, length = _FRAME_HEAD.unpack_from(buf, pos)
            if ftype == 0x41 and buf[pos:pos + 4] == b"AMQP":  # the broker refused our version
                raise ProtocolError(f"broker does not speak AMQP 0-9-1 "
                                    f"(it offered {bytes(buf[pos:pos + 8])!r})", 505)
            if length > self.frame_max - 8:
                raise ProtocolError(f"frame of {length} bytes exceeds frame_max "
                                    f"{self.frame_max}", 501)
            end = pos + 7 + length
            if end >= size:
                break
            if buf[end] != FRAME_END:
                raise ProtocolError(f"bad frame-end octet 0x{buf[end]:02x}", 501)
            payload = bytes(buf[pos + 7:end])
            pos = end + 1
            if ftype == METHOD:
                frames.append((METHOD, channel, _decode_method(payload, self.delivery_type)))
            elif ftype == BODY:
                frames.append((BODY, channel, payload))
            elif ftype == HEADER:
                frames.append((HEADER, channel, _decode_header(payload)))
            elif ftype == HEARTBEAT:
                frames.append((HEARTBEAT, channel, None))
            else:
                raise ProtocolError(f"unknown frame type {ftype}", 501)
        if pos:
            del buf[:pos]
        return frames


def _decode_method(payload: bytes, delivery_type: type[RawDelivery]) -> Any:
    if len(payload) < 4:
        raise ProtocolError("method frame shorter than its method id", 502)
    (index,) = _METHOD_ID.unpack_from(payload)
    if index == _DELIVER_ID:
        return _decode_deliver(payload, delivery_type)
    cls = _commands.INDEX_MAPPING.get(index)
    if cls is None:
        raise ProtocolError(f"unknown method {index >> 16}.{index & 0xFFFF}", 503)
    method = cls()
    try:
        method.unmarshal(payload[4:])
    except Exception as exc:  # pamqp raises struct.error, ValueError, UnicodeDecodeError, ...
        raise ProtocolError(f"malformed {method.name}: {exc}", 502) from None
    return method


def _decode_deliver(p: bytes, delivery_type: type[RawDelivery]) -> RawDelivery:
    try:
        end = 5 + p[4]
        consumer_tag = p[5:end].decode()
        (tag,) = UINT64.unpack_from(p, end)
        redelivered = bool(p[end + 8] & 1)
        pos = end + 9
        end = pos + 1 + p[pos]
        exchange = p[pos + 1:end].decode()
        pos = end
        end = pos + 1 + p[pos]
        routing_key = p[pos + 1:end].decode()
        if end != len(p):
            raise ValueError("length mismatch")
    except (IndexError, struct.error, UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"malformed Basic.Deliver: {exc}", 502) from None
    return delivery_type(consumer_tag, tag, redelivered, exchange, routing_key)


def _decode_header(payload: bytes) -> tuple[int, Properties]:
    if len(payload) < 14:
        raise ProtocolError("content header frame too short", 502)
    class_id, _weight, body_size = _HEADER_HEAD.unpack_from(payload)
    if class_id != 60:
        raise ProtocolError(f"content header for class {class_id}, expected basic (60)", 503)
    return body_size, decode_properties(payload, 12)


def encode_method(channel: int, method: Method) -> bytes:
    return _pframe.marshal(method, channel)


_publish_frames: dict[tuple[int, str, str, bool], bytes] = {}


def _publish_frame(channel: int, exchange: str, routing_key: str, mandatory: bool) -> bytes:
    key = (channel, exchange, routing_key, mandatory)
    method = _publish_frames.get(key)
    if method is None:
        args = (b"\x00\x3c\x00\x28\x00\x00" + encode_shortstr(exchange)
                + encode_shortstr(routing_key) + (b"\x01" if mandatory else b"\x00"))
        method = _FRAME_HEAD.pack(METHOD, channel, len(args)) + args + b"\xce"
        if len(_publish_frames) >= 4096:  # bounded: reply queues come and go
            _publish_frames.clear()
        _publish_frames[key] = method
    return method


def encode_publish(channel: int, exchange: str, routing_key: str, body: bytes,
                   properties: Properties, mandatory: bool, frame_max: int) -> bytes:
    """``basic.publish`` + content header + as many body frames as ``frame_max`` needs."""
    head = _HEADER_HEAD.pack(60, 0, len(body)) + encode_properties(properties)
    parts = [_publish_frame(channel, exchange, routing_key, mandatory),
             _FRAME_HEAD.pack(HEADER, channel, len(head)), head, b"\xce"]
    chunk = frame_max - 8
    if len(body) <= chunk:
        if body:
            parts += (_FRAME_HEAD.pack(BODY, channel, len(body)), body, b"\xce")
    else:
        view = memoryview(body)
        for start in range(0, len(body), chunk):
            piece = view[start:start + chunk]
            parts += (_FRAME_HEAD.pack(BODY, channel, len(piece)), piece, b"\xce")
    return b"".join(parts)


def encode_ack(channel: int, delivery_tag: int, multiple: bool) -> bytes:
    return _ACK.pack(METHOD, channel, 13, 0x003C0050, delivery_tag, multiple) + b"\xce"
