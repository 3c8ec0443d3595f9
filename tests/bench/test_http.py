"""The load generator's HTTP/1.1 client against a scripted trio server (real sockets)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from workup.bench.http import Client, HttpError, parse_head


def test_parse_head() -> None:
    status, headers = parse_head(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A:  b ")
    assert status == 201 and headers == {"content-length": "2", "x-a": "b"}
    with pytest.raises(HttpError):
        parse_head(b"SSH-2.0 hello")
    with pytest.raises(HttpError):
        parse_head(b"HTTP/1.1 200 OK\r\nno colon here")


async def _serve(nursery: trio.Nursery, answers: list[bytes], *, close_after: int | None = None) -> tuple[int, list[bytes]]:
    """A server that reads one request head (and its Content-Length body) per answer; the
    requests it saw. ``close_after``: close each connection after that many answers."""
    seen: list[bytes] = []
    queue = list(answers)

    async def handler(stream: trio.SocketStream) -> None:
        buf, served = b"", 0
        while queue:
            while b"\r\n\r\n" not in buf:
                data = await stream.receive_some(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            while len(buf) < length:
                buf += await stream.receive_some(65536)
            seen.append(head + b"\r\n\r\n" + buf[:length])
            buf = buf[length:]
            await stream.send_all(queue.pop(0))
            served += 1
            if close_after is not None and served >= close_after:
                await stream.aclose()
                return

    listeners = await nursery.start(trio.serve_tcp, handler, 0)
    return listeners[0].socket.getsockname()[1], seen


Run = Callable[[Client], Awaitable[None]]


async def test_keep_alive_json_and_chunked() -> None:
    async with trio.open_nursery() as nursery:
        port, seen = await _serve(nursery, [
            b"HTTP/1.1 201 Created\r\ncontent-length: 8\r\ncontent-type: application/json\r\n\r\n{\"a\": 1}",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ])
        client = Client(f"http://127.0.0.1:{port}")
        first = await client.request("POST", "/x", body={"k": "v"}, token="tok")
        assert first.status == 201 and first.json() == {"a": 1}
        second = await client.request("GET", "/y", headers={"X-Trace": "1"})
        assert second.status == 200 and second.body == b"abcde"
        third = await client.request("DELETE", "/z")
        assert third.status == 204 and third.body == b""
        assert client.opened == 1                      # one connection for the three
        assert seen[0].startswith(b"POST /x HTTP/1.1\r\n")
        assert b"Authorization: Bearer tok\r\n" in seen[0] and b"Content-Length: 9\r\n" in seen[0]
        assert seen[0].endswith(b'{"k":"v"}')
        assert b"X-Trace: 1\r\n" in seen[1] and b"Content-Length" not in seen[1]
        await client.aclose()
        nursery.cancel_scope.cancel()


async def test_a_connection_closed_while_idle_is_replaced() -> None:
    async with trio.open_nursery() as nursery:
        port, seen = await _serve(nursery, [b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n1",
                                            b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\n2"], close_after=1)
        client = Client(f"http://127.0.0.1:{port}")
        assert (await client.request("GET", "/")).body == b"1"
        await trio.sleep(0.05)                         # the server has closed it by now
        assert (await client.request("GET", "/")).body == b"2"
        assert client.opened == 2 and len(seen) == 2
        await client.aclose()
        nursery.cancel_scope.cancel()


async def test_connection_close_and_body_to_eof() -> None:
    async with trio.open_nursery() as nursery:
        port, _ = await _serve(nursery, [b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"], close_after=1)
        client = Client(f"http://127.0.0.1:{port}")
        assert (await client.request("GET", "/")).body == b"all of it"
        await client.aclose()
        nursery.cancel_scope.cancel()


async def test_refused_connection_is_an_http_error() -> None:
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                      # bound, not listening
    client = Client(f"http://127.0.0.1:{port}")
    with pytest.raises(HttpError, match="cannot connect"):
        await client.request("GET", "/")


def test_only_plain_http_urls() -> None:
    with pytest.raises(ValueError):
        Client("https://example.com")

