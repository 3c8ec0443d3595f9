"""A minimal Redis client on trio sockets: RESP2 commands over a small pool of connections.

Only what the cache needs (``GET``, ``SET``, ``EVALSHA``/``EVAL``, ``INFO``, ``AUTH``, ``SELECT``). It saves
the thread hop of calling redis-py from trio (measured in ``docs/gateway.md``). The protocol part
(:func:`encode_command`, :class:`RespParser`) does no I/O.
"""

from __future__ import annotations

from collections import deque
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator
from urllib.parse import unquote, urlsplit

import trio

from .._fdio import read_some, write_all

__all__ = ["RespError", "RespProtocolError", "NEED_DATA", "BROKEN", "encode_command", "RespParser", "RespPool",
           "parse_redis_url"]


class RespError(Exception):
    """An error reply from the server (``-ERR ...``)."""


class RespProtocolError(Exception):
    """The server sent something that is not RESP."""


NEED_DATA = object()

# how a connection fails when the server went away (trio wraps the socket's OSError in its own)
BROKEN = (OSError, ConnectionError, trio.BrokenResourceError, trio.ClosedResourceError)


def _bulk(arg: bytes | str | int) -> bytes:
    if isinstance(arg, str):
        arg = arg.encode()
    elif isinstance(arg, int):
        arg = str(arg).encode()
    return b"$%d\r\n%b\r\n" % (len(arg), arg)


def encode_command(*args: bytes | str | int) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(_bulk(a) for a in args)


class RespParser:
    """Feed bytes in, take complete replies out (``NEED_DATA`` until one is complete). Error
    replies come out as :class:`RespError` instances (not raised)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> Any:
        result, end = self._parse(0)
        if result is NEED_DATA:
            return NEED_DATA
        del self._buf[:end]
        return result

    def _line(self, pos: int) -> tuple[bytes | None, int]:
        end = self._buf.find(b"\r\n", pos)
        if end < 0:
            return None, pos
        return bytes(self._buf[pos:end]), end + 2

    def _parse(self, pos: int) -> tuple[Any, int]:
        line, nxt = self._line(pos)
        if line is None:
            return NEED_DATA, pos
        if not line:
            raise RespProtocolError("empty reply line")
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode(), nxt
        if kind == b"-":
            return RespError(rest.decode(errors="replace")), nxt
        if kind == b":":
            return int(rest), nxt
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None, nxt
            if len(self._buf) < nxt + n + 2:
                return NEED_DATA, pos
            return bytes(self._buf[nxt:nxt + n]), nxt + n + 2
        if kind == b"*":
            n = int(rest)
            if n < 0:
                return None, nxt
            items = []
            for _ in range(n):
                item, nxt = self._parse(nxt)
                if item is NEED_DATA:
                    return NEED_DATA, pos
                items.append(item)
            return items, nxt
        raise RespProtocolError(f"unknown reply type {kind!r}")


def parse_redis_url(url: str) -> tuple[str, int, int, str | None, str | None]:
    """``redis://[user:password@]host[:port][/db]`` → host, port, db, username, password."""
    parts = urlsplit(url)
    if parts.scheme != "redis":
        raise ValueError(f"only redis:// URLs are spoken directly, got {parts.scheme}://")
    path = parts.path.strip("/")
    db = int(path) if path else 0
    return (parts.hostname or "127.0.0.1", parts.port or 6379, db,
            unquote(parts.username) if parts.username else None,
            unquote(parts.password) if parts.password else None)


class _Connection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.parser = RespParser()
        self.pooled = False   # it went back to the pool once: a failure may just mean it went stale

    async def command(self, *args: bytes | str | int) -> Any:
        sock = self.stream.socket
        await write_all(sock, encode_command(*args))
        while (reply := self.parser.next()) is NEED_DATA:
            data = await read_some(sock, 65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            self.parser.feed(data)
        return reply


class RespPool:
    """Up to ``max_connections`` connections, reused; a connection that failed is dropped."""

    def __init__(self, url: str, *, max_connections: int = 32, timeout: float = 5.0) -> None:
        self.host, self.port, self.db, self.username, self.password = parse_redis_url(url)
        self.timeout = timeout
        self._max = max_connections
        self._run: object = None
        self._idle: deque[_Connection] = deque()
        self._slots = trio.Semaphore(max_connections)

    def _for_this_run(self) -> None:
        """Connections belong to one ``trio.run`` (a process-wide pool may outlive one, as in
        tests): start afresh under a new one."""
        token = trio.lowlevel.current_trio_token()
        if token is not self._run:
            self._drop_idle()
            self._slots = trio.Semaphore(self._max)
            self._run = token

    async def _connect(self) -> _Connection:
        stream = await trio.open_tcp_stream(self.host, self.port)
        conn = _Connection(stream)
        try:
            if self.password is not None:
                auth = (self.username, self.password) if self.username else (self.password,)
                _check(await conn.command("AUTH", *auth))
            if self.db:
                _check(await conn.command("SELECT", self.db))
        except BaseException:
            await stream.aclose()
            raise
        return conn

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[_Connection]:
        self._for_this_run()
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            except BaseException:
                with trio.CancelScope(shield=True):
                    await conn.stream.aclose()
                raise
            conn.pooled = True
            self._idle.append(conn)

    async def command(self, *args: bytes | str | int) -> Any:
        """One command's reply (an error reply is returned as a :class:`RespError`).

        A pooled connection that turns out broken (the server restarted or dropped it) is retried
        once on a fresh one, after closing every other idle connection, which died with it: the
        commands sent here (``GET``, ``SET``, ``INFO``, the versioned compare-and-set) give the
        same result when sent twice."""
        with trio.fail_after(self.timeout):
            reused = False
            try:
                async with self.connection() as conn:
                    reused = conn.pooled
                    return await conn.command(*args)
            except BROKEN:
                if not reused:
                    raise
            self._drop_idle()
            async with self.connection() as conn:
                return await conn.command(*args)

    def _drop_idle(self) -> None:
        for conn in self._idle:
            conn.stream.socket.close()
        self._idle.clear()

    async def aclose(self) -> None:
        while self._idle:
            await self._idle.pop().stream.aclose()


def _check(reply: Any) -> Any:
    if isinstance(reply, RespError):
        raise reply
    return reply
