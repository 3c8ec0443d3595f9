"""Cassandra's request path on trio sockets: CQL native protocol v4 frames, encoded and decoded by
the driver's own codec (``cassandra.protocol.ProtocolHandler``, Cython where built), written and
read by the task that waits for the answer.

Why not the driver's ``execute_async``: it hands every statement to its I/O thread and back
(two thread wake-ups, its futures, timers and callbacks), ~250 µs of CPU per statement in a
worker against ~60 µs here, measured with 8 statements in flight (docs/performance.md). The
driver still does everything else: it knows the cluster (its control connection, host up/down,
the token map), prepares statements on every node, and runs the schema statements.

How one connection works without a task of its own (so it needs no nursery): a request puts its
frame in the connection's out-queue and, unless another task is writing, writes the queue itself
(every frame queued meanwhile goes in the same socket write); then it waits for its answer. One
waiting task at a time reads the socket (the reader) and hands each answer to the task whose
stream id it carries; when the reader has its own answer it passes the reading on to another
waiting task. A request that times out or is cancelled leaves its stream id reserved until its
answer comes (or the connection dies), so ids are never reused while the server may still answer.
A connection that fails fails every request waiting on it; the next request opens a new one.
"""

from __future__ import annotations

import struct
from typing import Any, Callable, Iterator, Protocol, Sequence

import trio

from .._fdio import read_some, write_all

__all__ = ["FrameBuffer", "Frame", "CqlConnection", "CqlNodes", "HEADER"]

HEADER = 9                     # v4 frame header: version, flags, stream (2), opcode, length (4)
_HEAD = struct.Struct(">BBhBi")
_RESPONSE_V4 = 0x84            # a response frame of protocol v4
_MAX_FRAME = 256 * 1024 * 1024  # the protocol's own bound on a frame body
_STREAMS = 32768               # v4 stream ids are 0..32767 (we use 1..)
SEND_TIME = 10.0               # bound on one shielded socket write


Frame = tuple[int, int, int, bytes]
"""(stream id, flags, opcode, body) of one response frame."""


class FrameBuffer:
    """Bytes from the socket in, whole frames out (no I/O)."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> Iterator[Frame]:
        buf = self._buf
        buf += data
        start = 0
        while len(buf) - start >= HEADER:
            version, flags, stream, opcode, length = _HEAD.unpack_from(buf, start)
            if version != _RESPONSE_V4 or not 0 <= length <= _MAX_FRAME:
                raise ConnectionError(f"not a CQL v4 response frame (version byte {version:#x}, length {length})")
            end = start + HEADER + length
            if len(buf) < end:
                break
            yield stream, flags, opcode, bytes(buf[start + HEADER:end])
            start = end
        del buf[:start]


class Codec(Protocol):
    """The driver's ``ProtocolHandler`` as this module uses it."""

    def encode_message(self, msg: Any, stream_id: int, protocol_version: int, compressor: None,
                       allow_beta_protocol_version: bool, protocol_features: None) -> bytes: ...

    def decode_message(self, protocol_version: int, protocol_features: None, user_type_map: dict[str, Any],
                       stream_id: int, flags: int, opcode: int, body: bytes, decompressor: None,
                       result_metadata: Any) -> Any: ...


class _Waiter:
    __slots__ = ("event", "frame", "read", "failure")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.frame: Frame | None = None
        self.read = False                   # woken to take over reading, not answered
        self.failure: BaseException | None = None


class CqlConnection:
    """One connection to one node (see the module docstring)."""

    def __init__(self, stream: trio.SocketStream, codec: Codec, address: str) -> None:
        self._stream = stream
        self._codec = codec
        self.address = address
        self._frames = FrameBuffer()
        self._out: list[bytes] = []
        self._writing = False
        self._reading = False
        self._waiters: dict[int, _Waiter | None] = {}   # None: its requester left, answer still due
        self._next = 1
        self.failure: BaseException | None = None

    @classmethod
    async def open(cls, host: str, port: int, codec: Codec, *, timeout: float) -> "CqlConnection":
        from cassandra.protocol import ReadyMessage, StartupMessage
        address = f"{host}:{port}"
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
        conn = cls(stream, codec, address)
        try:
            with trio.fail_after(timeout):
                answer = await conn.request(StartupMessage(cqlversion="3.0.0", options={}), None)
        except BaseException:
            await conn.aclose()
            raise
        if not isinstance(answer, ReadyMessage):
            await conn.aclose()
            raise ConnectionError(f"Cassandra at {address} answered STARTUP with {type(answer).__name__} "
                                  "(authentication is not supported)")
        return conn

    @property
    def usable(self) -> bool:
        return self.failure is None

    def _stream_id(self) -> int:
        for _ in range(_STREAMS):
            sid = self._next
            self._next = sid + 1 if sid + 1 < _STREAMS else 1
            if sid not in self._waiters:
                return sid
        raise ConnectionError(f"Cassandra at {self.address}: every stream id is in use")

    async def request(self, message: Any, result_metadata: Any) -> Any:
        """The decoded answer to ``message`` (an ERROR answer is returned, not raised)."""
        if self.failure is not None:
            raise ConnectionError(f"Cassandra at {self.address}: connection failed ({self.failure})")
        sid = self._stream_id()
        waiter = self._waiters[sid] = _Waiter()
        try:
            self._out.append(self._codec.encode_message(message, sid, 4, None, False, None))
            await self._flush()
            while waiter.frame is None and waiter.failure is None:
                if not self._reading:
                    await self._read_until(waiter)
                else:
                    await waiter.event.wait()
                    if waiter.read:
                        waiter.read, waiter.event = False, trio.Event()
        finally:
            if waiter.frame is None and waiter.failure is None and self.failure is None:
                self._waiters[sid] = None      # answer still due: keep the id reserved
            else:
                self._waiters.pop(sid, None)
            if not self._reading:
                self._hand_over_reading()
        if waiter.failure is not None:
            raise ConnectionError(f"Cassandra at {self.address}: connection failed ({waiter.failure})") from waiter.failure
        assert waiter.frame is not None
        stream, flags, opcode, body = waiter.frame
        return self._codec.decode_message(4, None, {}, stream, flags, opcode, body, None, result_metadata)

    async def _flush(self) -> None:
        if self._writing:
            return                          # the writing task takes our frame along
        self._writing = True
        try:
            while self._out and self.failure is None:
                data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
                self._out.clear()
                # shielded: a write cut in the middle would leave half a frame on the wire
                with trio.CancelScope(shield=True) as scope:
                    scope.deadline = trio.current_time() + SEND_TIME
                    try:
                        await write_all(self._stream.socket, data)
                    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        self._fail(exc)
                if scope.cancelled_caught:
                    self._fail(TimeoutError(f"a write did not finish within {SEND_TIME} s"))
        finally:
            self._writing = False

    async def _read_until(self, waiter: _Waiter) -> None:
        self._reading = True
        try:
            while waiter.frame is None and self.failure is None:
                try:
                    data = await read_some(self._stream.socket, 65536)
                except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    self._fail(exc)
                    return
                if not data:
                    self._fail(EOFError("the node closed the connection"))
                    return
                try:
                    for frame in self._frames.feed(data):
                        self._deliver(frame)
                except ConnectionError as exc:
                    self._fail(exc)
        finally:
            self._reading = False

    def _deliver(self, frame: Frame) -> None:
        sid = frame[0]
        if sid not in self._waiters:
            return                          # an event (stream -1) or an answer nobody asked for
        waiter = self._waiters.pop(sid)
        if waiter is not None:
            waiter.frame = frame
            waiter.event.set()

    def _hand_over_reading(self) -> None:
        for waiter in self._waiters.values():
            if waiter is not None and not waiter.event.is_set():
                waiter.read = True
                waiter.event.set()
                return

    def _fail(self, exc: BaseException) -> None:
        if self.failure is not None:
            return
        self.failure = exc
        for waiter in self._waiters.values():
            if waiter is not None:
                waiter.failure = exc
                waiter.event.set()
        self._waiters = {sid: w for sid, w in self._waiters.items() if w is not None}
        self._stream.socket.close()         # no await: may run inside a shielded write

    async def aclose(self) -> None:
        if self.failure is None:
            self._fail(EOFError("closed"))
        await self._stream.aclose()


class CqlNodes:
    """One :class:`CqlConnection` per node, opened on first use, opened again after it failed.
    ``plan(statement)`` gives the nodes to try in order (the driver's load-balancing policy:
    token-aware); a node that cannot be reached is skipped for the next one, and a statement
    that reached no node raises the driver's ``NoHostAvailable`` (a 503 for the caller). After a
    failed connect a node is skipped for ``retry_after`` seconds, so requests do not queue up
    behind connect attempts to a node that is away (each would wait up to ``connect_timeout``)."""

    def __init__(self, codec: Codec, plan: Callable[[Any], Iterator[Any]], *, connect_timeout: float,
                 retry_after: float = 0.5) -> None:
        self._codec = codec
        self._plan = plan
        self._timeout = connect_timeout
        self._retry_after = retry_after
        self._connections: dict[tuple[str, int], CqlConnection] = {}
        self._opening: dict[tuple[str, int], trio.Lock] = {}
        self._failed: dict[tuple[str, int], tuple[float, BaseException]] = {}

    async def connection(self, routed: Any) -> CqlConnection:
        from cassandra.cluster import NoHostAvailable
        errors: dict[str, BaseException] = {}
        for host in self._plan(routed):
            address = (host.endpoint.address, host.endpoint.port)
            try:
                return await self._open(address)
            except (OSError, trio.TooSlowError) as exc:
                errors[f"{address[0]}:{address[1]}"] = exc
        raise NoHostAvailable("no Cassandra node could be reached", errors)

    async def _open(self, address: tuple[str, int]) -> CqlConnection:
        conn = self._connections.get(address)
        if conn is not None and conn.usable:
            return conn
        lock = self._opening.setdefault(address, trio.Lock())
        async with lock:                    # one connect per node at a time, the others wait for it
            conn = self._connections.get(address)
            if conn is not None and conn.usable:
                return conn
            failed = self._failed.get(address)
            if failed is not None and trio.current_time() < failed[0]:
                raise ConnectionError(f"Cassandra at {address[0]}:{address[1]} could not be reached "
                                      f"a moment ago ({failed[1]!r})")
            try:
                conn = await CqlConnection.open(address[0], address[1], self._codec, timeout=self._timeout)
            except (OSError, trio.TooSlowError) as exc:
                self._failed[address] = (trio.current_time() + self._retry_after, exc)
                raise
            self._failed.pop(address, None)
            self._connections[address] = conn
            return conn

    async def aclose(self) -> None:
        for conn in self._connections.values():
            await conn.aclose()
        self._connections.clear()


def batch_queries(bound: Sequence[Any]) -> list[tuple[bool, bytes, list[bytes]]]:
    """The (prepared, query id, values) entries of a BATCH message for bound statements."""
    return [(True, b.prepared_statement.query_id, b.values) for b in bound]
