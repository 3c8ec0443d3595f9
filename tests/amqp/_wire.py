"""Building and reading broker-side frames with pamqp, for the sans-IO tests."""

from __future__ import annotations

from typing import Any

from pamqp import body as pbody
from pamqp import commands as C
from pamqp import frame as pframe
from pamqp import header as pheader

from workup.amqp import ConnectionParams
from workup.amqp.lowlevel import ConnectionCore, ConnectionOpened, RawDelivery


def frame(method: Any, channel: int = 0) -> bytes:
    return pframe.marshal(method, channel)


def content(channel: int, method: Any, body: bytes, frame_max: int = 131072,
            **props: Any) -> bytes:
    """A deliver/return method + header + body frames, the way a broker sends them."""
    header = pheader.ContentHeader(0, len(body), C.Basic.Properties(**props))
    out = [frame(method, channel), pframe.marshal(header, channel)]
    step = frame_max - 8
    for start in range(0, len(body), step):
        out.append(pframe.marshal(pbody.ContentBody(body[start:start + step]), channel))
    return b"".join(out)


def parse(data: bytes) -> list[tuple[int, Any]]:
    """Every frame in ``data`` as (channel, pamqp object), by pamqp's own decoder."""
    frames = []
    while data:
        used, channel, value = pframe.unmarshal(data)
        frames.append((channel, value))
        data = data[used:]
    return frames


def start_frame(mechanisms: str = "PLAIN AMQPLAIN") -> bytes:
    return frame(C.Connection.Start(server_properties={"product": "fake"},
                                    mechanisms=mechanisms))


def open_core(heartbeat: int = 60, frame_max: int = 131072,
              server_frame_max: int = 131072,
              delivery_type: type[RawDelivery] = RawDelivery) -> ConnectionCore:
    """A core that went through the whole handshake."""
    core = ConnectionCore(ConnectionParams(heartbeat=heartbeat, frame_max=frame_max),
                          delivery_type=delivery_type)
    core.start()
    core.data_to_send()
    core.receive_data(start_frame())
    core.receive_data(frame(C.Connection.Tune(2047, server_frame_max, 60)))
    events = core.receive_data(frame(C.Connection.OpenOk()))
    assert isinstance(events[0], ConnectionOpened)
    core.data_to_send()
    return core
