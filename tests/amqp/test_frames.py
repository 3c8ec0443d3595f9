"""The frame codec: our fast paths agree with pamqp byte for byte, any chunking works, and
malformed input is a ProtocolError (never a hang, never another exception)."""

from __future__ import annotations

import random

import pytest
from pamqp import body as pbody
from pamqp import commands as C
from pamqp import frame as pframe
from pamqp import header as pheader

from workup.amqp import Properties, ProtocolError
from workup.amqp._core._frames import BODY, HEADER, HEARTBEAT, METHOD, encode_ack, encode_publish
from workup.amqp._core._message import decode_properties, decode_table, encode_properties, encode_table
from pamqp import decode as pdecode
from workup.amqp.lowlevel import FrameReader, RawDelivery

from ._wire import content, frame

FULL = Properties(content_type="application/msgpack", content_encoding="identity",
                  headers={"caller": "u-1", "role": "client", "n": 7, "flag": True,
                           "nested": {"a": [1, "b"]}},
                  delivery_mode=2, priority=5, correlation_id="c-42",
                  reply_to="amq.rabbitmq.reply-to", expiration="60000", message_id="m-1",
                  timestamp=1700000000, type="jobs.CreateJob", user_id="guest", app_id="workup")


def _pamqp_props(p: Properties) -> C.Basic.Properties:
    import datetime
    ts = None if p.timestamp is None else datetime.datetime.fromtimestamp(
        p.timestamp, tz=datetime.timezone.utc)
    return C.Basic.Properties(
        content_type=p.content_type, content_encoding=p.content_encoding, headers=p.headers,
        delivery_mode=p.delivery_mode, priority=p.priority, correlation_id=p.correlation_id,
        reply_to=p.reply_to, expiration=p.expiration, message_id=p.message_id, timestamp=ts,
        message_type=p.type, user_id=p.user_id, app_id=p.app_id)


@pytest.mark.parametrize("props", [Properties(), Properties(correlation_id="1"), FULL])
def test_properties_match_pamqp(props: Properties) -> None:
    ours = encode_properties(props)
    assert ours == _pamqp_props(props).marshal()
    header = pheader.ContentHeader(0, 5, _pamqp_props(props)).marshal()
    assert decode_properties(header, 12) == props


@pytest.mark.parametrize("table", [
    {}, {"caller": "u-1", "role": "CLIENT", "deadline": 1700000000.125, "identity": "e" * 300},
    {"caller": "ü", "role": ""}, {"s": "x", "n": 7}, {"flag": True, "d": 2.5}, FULL.headers])
def test_table_fast_path_matches_pamqp(table: dict) -> None:
    """Strings and doubles are read by our own loop, other kinds by pamqp: the same either way."""
    data = b"pad" + encode_table(table) + b"tail"
    assert decode_table(data, 3) == (len(data) - 7, pdecode.field_table(data[3:-4])[1])
    assert decode_table(data, 3)[1] == table
    raw = b"\x01kS\x00\x00\x00\x02\xff\xfe"   # a long string that is not UTF-8 stays bytes
    framed = len(raw).to_bytes(4, "big") + raw
    assert decode_table(framed, 0) == pdecode.field_table(framed) == (len(framed), {"k": b"\xff\xfe"})


@pytest.mark.parametrize("size", [0, 100, 131064, 131065, 300_000])
def test_publish_frames_match_pamqp(size: int) -> None:
    body = bytes(random.Random(size).getrandbits(8) for _ in range(min(size, 64))) * (
        size // 64 + 1)
    body = body[:size]
    ours = encode_publish(3, "ex", "rk.1", body, FULL, True, 131072)
    theirs = [pframe.marshal(C.Basic.Publish(exchange="ex", routing_key="rk.1",
                                             mandatory=True), 3),
              pframe.marshal(pheader.ContentHeader(0, size, _pamqp_props(FULL)), 3)]
    for start in range(0, size, 131064):
        theirs.append(pframe.marshal(pbody.ContentBody(body[start:start + 131064]), 3))
    assert ours == b"".join(theirs)


def test_float_headers_are_doubles() -> None:
    # pamqp would send 32-bit floats: a deadline of 1.7e9 s would move by up to a minute
    props = Properties(headers={"deadline": 1700000000.123456, "blob": b"\x00\xff"})
    header = pheader.ContentHeader(0, 0, props and C.Basic.Properties()).marshal()[:12]
    decoded = decode_properties(header + encode_properties(props), 12)
    assert decoded.headers == {"deadline": 1700000000.123456, "blob": bytearray(b"\x00\xff")}


def test_ack_matches_pamqp() -> None:
    for multiple in (False, True):
        assert encode_ack(9, 2**40 + 3, multiple) == pframe.marshal(
            C.Basic.Ack(2**40 + 3, multiple), 9)


def test_deliver_fast_path_matches_pamqp() -> None:
    data = frame(C.Basic.Deliver("ctag.é", 77, True, "ex", "a.b"), 4)
    [(ftype, channel, value)] = FrameReader().feed(data)
    assert (ftype, channel, type(value)) == (METHOD, 4, RawDelivery)
    assert (value.consumer_tag, value.delivery_tag, value.redelivered, value.exchange,
            value.routing_key) == ("ctag.é", 77, True, "ex", "a.b")


def _stream() -> bytes:
    return b"".join([
        frame(C.Connection.Tune(2047, 131072, 60)),
        content(1, C.Basic.Deliver("t", 1, False, "", "q"), b"x" * 300_000, correlation_id="a"),
        b"\x08\x00\x00\x00\x00\x00\x00\xce",
        content(2, C.Basic.Deliver("t", 2, False, "", "q"), b"", reply_to="r"),
        frame(C.Basic.Ack(5, True), 1),
    ])


def _summary(frames: list) -> list:
    out = []
    for ftype, channel, value in frames:
        if ftype == METHOD:
            out.append((channel, getattr(value, "name", None) or value.delivery_tag))
        elif ftype == HEADER:
            out.append((channel, value[0], value[1]))
        elif ftype == BODY:
            out.append((channel, len(value)))
        else:
            assert ftype == HEARTBEAT
            out.append((channel, "heartbeat"))
    return out


def test_any_chunking_gives_the_same_frames() -> None:
    data = _stream()
    whole = _summary(FrameReader().feed(data))
    assert len(whole) == 10
    rng = random.Random(1)
    for _ in range(30):
        reader, got, pos = FrameReader(), [], 0
        while pos < len(data):
            step = rng.choice([1, 2, 7, 8, 13, 1000, 70000])
            got += reader.feed(data[pos:pos + step])
            pos += step
        assert _summary(got) == whole
    # byte by byte over the small frames
    reader, got = FrameReader(), []
    small = frame(C.Basic.Ack(5, True), 1) + frame(C.Connection.Tune(1, 4096, 2))
    for i in range(len(small)):
        got += reader.feed(small[i:i + 1])
    assert [f[2].name for f in got] == ["Basic.Ack", "Connection.Tune"]


@pytest.mark.parametrize("data,match", [
    (frame(C.Basic.Ack(1), 1)[:-1] + b"\x00", "frame-end"),
    (b"\x01\x00\x01\x00\x10\x00\x00" + b"\x00" * 20, "exceeds frame_max"),
    (b"\x05\x00\x00\x00\x00\x00\x01\x00\xce", "unknown frame type"),
    (b"\x01\x00\x00\x00\x00\x00\x04\x00\x63\x00\x07\xce", "unknown method"),
    (b"\x01\x00\x00\x00\x00\x00\x02\x00\x0a\xce", "shorter than its method id"),
    (b"\x01\x00\x01\x00\x00\x00\x06\x00\x3c\x00\x3c\x09\x61\xce", "Basic.Deliver"),
    (b"\x01\x00\x00\x00\x00\x00\x06\x00\x0a\x00\x0a\x00\x09\xce", "Connection.Start"),
    (b"\x02\x00\x01\x00\x00\x00\x03\x00\x3c\x00\xce", "content header"),
    (b"AMQP\x00\x00\x09\x01", "does not speak AMQP 0-9-1"),
])
def test_malformed_input_is_a_protocol_error(data: bytes, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        FrameReader(frame_max=4096).feed(data)


def test_truncated_content_header_properties() -> None:
    good = pheader.ContentHeader(0, 1, _pamqp_props(FULL)).marshal()
    for cut in (13, 20, len(good) - 1):
        with pytest.raises(ProtocolError):
            decode_properties(good[:cut], 12)


def test_partial_frame_waits_for_more() -> None:
    reader = FrameReader()
    data = frame(C.Basic.Ack(1), 1)
    assert reader.feed(data[:-1]) == []
    assert len(reader.feed(data[-1:])) == 1
