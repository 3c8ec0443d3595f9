"""A scripted fake AMQP server and a killable TCP proxy, both real trio TCP servers on
port 0, for the failure tests."""

from __future__ import annotations

import functools
from typing import Awaitable, Callable

import trio
from pamqp import commands as C

from ._wire import frame, parse

Script = Callable[[trio.SocketStream], Awaitable[None]]


async def serve(script: Script, nursery: trio.Nursery) -> int:
    """Run ``script`` for each connection; return the port."""
    listeners = await nursery.start(functools.partial(trio.serve_tcp, script, 0,
                                                      host="127.0.0.1"))
    return int(listeners[0].socket.getsockname()[1])


async def read_frames(stream: trio.SocketStream, count: int) -> list:
    """Read until ``count`` frames (after the 8-byte protocol header if present) arrived."""
    data = b""
    while True:
        body = data[8:] if data.startswith(b"AMQP") else data
        try:
            frames = parse(body)
        except Exception:
            frames = []
        if len(frames) >= count:
            return frames
        chunk = await stream.receive_some(65536)
        if not chunk:
            return frames
        data += chunk


async def handshake(stream: trio.SocketStream, heartbeat: int = 0) -> None:
    header = await stream.receive_some(8)
    assert header == b"AMQP\x00\x00\x09\x01"
    await stream.send_all(frame(C.Connection.Start(server_properties={},
                                                   mechanisms="PLAIN")))
    await read_frames(stream, 1)  # start-ok
    await stream.send_all(frame(C.Connection.Tune(2047, 131072, heartbeat)))
    await read_frames(stream, 2)  # tune-ok, open
    await stream.send_all(frame(C.Connection.OpenOk()))


class Proxy:
    """Forwards TCP connections to the broker; :meth:`kill` cuts them all at once."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.scopes: list[trio.CancelScope] = []
        self.connections = 0

    async def handle(self, client: trio.SocketStream) -> None:
        self.connections += 1
        upstream = await trio.open_tcp_stream(*self.target)
        scope = trio.CancelScope()
        self.scopes.append(scope)
        try:
            with scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_pump, client, upstream)
                    nursery.start_soon(_pump, upstream, client)
        finally:
            await trio.aclose_forcefully(client)
            await trio.aclose_forcefully(upstream)

    def kill(self) -> None:
        for scope in self.scopes:
            scope.cancel()
        self.scopes.clear()


async def _pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass


async def confirmed_in_queue(channel, queue: str, total: int, timeout: float) -> set[int]:
    """Consume ``queue`` (bodies are integers) until ``total`` distinct ones arrived or
    ``timeout`` passed; acks each. What a reconnect test checks its confirmed publishes against."""
    got: set[int] = set()
    async with await channel.consume(queue) as deliveries:
        with trio.move_on_after(timeout):
            async for delivery in deliveries:
                got.add(int(delivery.body))
                delivery.ack()
                if len(got) == total:
                    break
    return got
