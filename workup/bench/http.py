"""A small keep-alive HTTP/1.1 client on trio streams, for the load generator.

Why not httpx: the load generator must stay far cheaper than the system it loads (issue 11 wants
its CPU per request at most a quarter of the system's). httpx goes through httpcore's pool, h11's
state machine and anyio for every request; this client writes one request with one ``send_all``
and parses the answer with ``bytes.find``, which is all the gateway's answers need
(``Content-Length`` bodies, ``chunked`` as a fallback). ``docs/performance.md`` gives the
measured cost of both.

Each :class:`Client` keeps a pool of idle connections to one ``http://host:port``; a request
takes an idle connection or opens one, and gives it back when the answer has been read whole.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import msgspec
import trio

__all__ = ["Client", "Response", "HttpError", "parse_head"]

_MAX_HEAD = 64 * 1024


class HttpError(Exception):
    """The connection failed or the answer was not HTTP/1.1 we can read."""


class Response(msgspec.Struct, frozen=True):
    status: int
    headers: dict[str, str]   # names in lower case
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """``HTTP/1.1 200 OK\\r\\nName: value...`` (without the blank line) → status, headers."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise HttpError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            raise HttpError(f"bad header line: {line[:80]!r}")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    return int(parts[1]), headers


class _Connection:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.used = False          # has answered a request: an idle close may have hit it

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise EOFError
        self.buffer += data

    async def _read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            await self._fill()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def _read_line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            await self._fill()
        line = bytes(self.buffer[:end])
        del self.buffer[:end + 2]
        return line

    async def exchange(self, request: bytes, head_only: bool) -> tuple[Response, bool]:
        """Send ``request``, read the answer; also whether the connection may be reused."""
        await self.stream.send_all(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if len(self.buffer) > _MAX_HEAD:
                raise HttpError("response head over 64 KiB")
            await self._fill()
        status, headers = parse_head(bytes(self.buffer[:end]))
        del self.buffer[:end + 4]
        keep = headers.get("connection", "").lower() != "close"
        if head_only or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "content-length" in headers:
            body = await self._read_exactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            chunks = []
            while size := int((await self._read_line()).split(b";")[0], 16):
                chunks.append(await self._read_exactly(size))
                await self._read_exactly(2)
            while await self._read_line():   # trailers, up to the blank line
                pass
            body = b"".join(chunks)
        else:                                 # delimited by the close
            try:
                while True:
                    await self._fill()
            except EOFError:
                pass
            body, keep = bytes(self.buffer), False
            self.buffer.clear()
        self.used = True
        return Response(status, headers, body), keep


class Client:
    """Requests to one ``base_url`` over pooled keep-alive connections (no TLS, no redirects)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"need an http://host:port URL, got {base_url!r}")
        self.host, self.port = parts.hostname, parts.port or 80
        self.timeout = timeout
        self._authority = f"{self.host}:{self.port}".encode()
        self._idle: list[_Connection] = []
        self.opened = 0            # connections opened, for the report

    async def request(self, method: str, path: str, *, body: object = None,
                      token: str | None = None, headers: dict[str, str] | None = None) -> Response:
        payload = b"" if body is None else msgspec.json.encode(body)
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self._authority]
        if token is not None:
            lines.append(b"Authorization: Bearer " + token.encode())
        if body is not None:
            lines.append(b"Content-Type: application/json")
        if payload or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: %d" % len(payload))
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}".encode())
        request = b"\r\n".join(lines) + b"\r\n\r\n" + payload
        with trio.fail_after(self.timeout):
            while True:
                conn = self._idle.pop() if self._idle else await self._open()
                try:
                    response, keep = await conn.exchange(request, method == "HEAD")
                except (EOFError, trio.BrokenResourceError, OSError) as exc:
                    await trio.aclose_forcefully(conn.stream)
                    # A reused connection may have been closed by the server while idle before
                    # it read our request: try once more on a fresh one. A fresh one failing is
                    # a real error.
                    if conn.used and not conn.buffer:
                        continue
                    raise HttpError(f"{method} {path}: connection failed ({exc!r})") from exc
                except BaseException:
                    await trio.aclose_forcefully(conn.stream)
                    raise
                if keep:
                    self._idle.append(conn)
                else:
                    await trio.aclose_forcefully(conn.stream)
                return response

    async def _open(self) -> _Connection:
        try:
            stream = await trio.open_tcp_stream(self.host, self.port)
        except OSError as exc:
            raise HttpError(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from exc
        self.opened += 1
        return _Connection(stream)

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await trio.aclose_forcefully(conn.stream)
