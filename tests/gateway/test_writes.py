"""How an answer goes onto the socket: head and body of a small answer in one send
(``workup/gateway/_server.py`` and ``_drain.py``), the bytes the client reads unchanged."""

from __future__ import annotations

import socket
from functools import partial
from typing import Any

import pytest
import trio

from workup.gateway import serve_app
from workup.settings import Settings
from workup.transport.envelope import Caller, Reply

from ._serve import make_app, served

HEX = "0123456789abcdef0123456789abcdef"
BODY = b'{"id":"' + HEX.encode() + b'","status":"ACTIVE","amount":12.5}'


class Answers:
    """A transport whose every command answers ``BODY`` (or a 404 problem)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status

    async def call(self, command: str, request: Any, *, caller: Caller, timeout: float,
                   request_id: str | None = None) -> Reply:
        if self.status == 200:
            return Reply(status=200, body=BODY)
        return Reply(status=self.status, body=b'{"type":"about:blank","title":"Not Found","status":404}')


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every chunk a trio socket stream of this process sends (the server's answers among them)."""
    seen: list[bytes] = []
    original = trio.SocketStream.send_all

    async def recording(self: trio.SocketStream, data: Any) -> None:
        seen.append(bytes(data))
        await original(self, data)

    monkeypatch.setattr(trio.SocketStream, "send_all", recording)
    return seen


def _answers(seen: list[bytes]) -> list[bytes]:
    return [chunk for chunk in seen if chunk.startswith(b"HTTP/1.1 ")]


@pytest.mark.parametrize("status", [200, 404])
async def test_head_and_body_go_out_in_one_send(sends: list[bytes], status: int) -> None:
    app = make_app(Answers(status))
    token = app.gw.tokens.issue(HEX, "CLIENT")
    async with served(app) as (client, _):
        for _ in range(3):   # the first and the following answers on a kept-alive connection
            response = await client.get(f"/api/v1/contracts/{HEX}", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == status
    answers = _answers(sends)
    assert len(answers) == 3
    for answer in answers:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:"))) == len(body) > 0
    if status == 200:
        assert all(answer.endswith(BODY) for answer in answers)
        assert BODY not in sends   # the body was not sent again on its own


async def test_an_empty_answer_and_a_raw_client_read_the_same_bytes() -> None:
    """A client reading the socket itself gets status line, headers and body, answer after
    answer on one kept-alive connection (a 404 of the gateway's own and a HEAD, whose head
    announces a body it does not carry, among them)."""
    app = make_app(Answers())
    token = app.gw.tokens.issue(HEX, "CLIENT")
    async with served(app) as (_, url):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        await sock.connect((host, int(port)))
        stream = trio.SocketStream(sock)
        contract = f"/api/v1/contracts/{HEX}"
        for method, path in (("GET", contract), ("GET", "/api/v1/nowhere"), ("HEAD", contract), ("GET", contract)):
            await stream.send_all(f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                data += await stream.receive_some()
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:")))
            if method == "HEAD":
                assert head.startswith(b"HTTP/1.1 200") and length == len(BODY) and body == b""
                continue
            while len(body) < length:
                body += await stream.receive_some()
            assert len(body) == length
            if path.endswith(HEX):
                assert head.startswith(b"HTTP/1.1 200") and body == BODY
            else:
                assert head.startswith(b"HTTP/1.1 404") and b'"status":404' in body
            assert b"x-request-id:" in head.lower() and b"nosniff" in head
        await stream.aclose()


class Slow(Answers):
    """Answers ``BODY`` after ``delay`` seconds (a service busy longer than the idle bound)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def call(self, command: str, request: Any, *, caller: Caller, timeout: float,
                   request_id: str | None = None) -> Reply:
        await trio.sleep(self.delay)
        return await super().call(command, request, caller=caller, timeout=timeout, request_id=request_id)


async def test_the_idle_timer_spares_a_request_in_progress_and_closes_after_the_answer() -> None:
    """The keep-alive bound (``http_idle_timeout``) counts from the end of the last answer: a
    request waiting on its service longer than that is answered, twice on one connection, and
    the connection then closes within the bound."""
    bound = 1.0
    app = make_app(Slow(bound * 1.5), settings=Settings(http_idle_timeout=bound))
    token = app.gw.tokens.issue(HEX, "CLIENT")
    async with served(app) as (_, url):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        for _ in range(2):
            await stream.send_all(f"GET /api/v1/contracts/{HEX} HTTP/1.1\r\nHost: x\r\n"
                                  f"Authorization: Bearer {token}\r\n\r\n".encode())
            answer = b""
            with trio.fail_after(10):
                while not answer.endswith(BODY):
                    data = await stream.receive_some()
                    assert data, "closed while the request was in progress"
                    answer += data
            assert answer.startswith(b"HTTP/1.1 200")
            await trio.sleep(bound / 2)   # idle, but less than the bound
        started = trio.current_time()
        with trio.fail_after(bound + 3):
            while await stream.receive_some():
                pass
        assert trio.current_time() - started <= bound + 1.5   # (bound / 2 of it already idle)
        await stream.aclose()


@pytest.mark.parametrize("client_leaves", ["mid-request", "idle", "stays"])
async def test_a_graceful_stop_is_not_held_by_the_idle_timer(client_leaves: str) -> None:
    """A stop (SIGTERM: hypercorn's shutdown trigger) ends at once whether the last client left
    in the middle of a request, left after its answer, or is still connected and idle: the idle
    timer never keeps a connection's tasks alive up to ``graceful_timeout``."""
    app = make_app(Slow(0.5 if client_leaves == "mid-request" else 0.0), settings=Settings(http_idle_timeout=30))
    token = app.gw.tokens.issue(HEX, "CLIENT")
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_app, app, shutdown_trigger=stop.wait, graceful_timeout=20))
        host, port = url.removeprefix("http://").rsplit(":", 1)
        stream = await trio.open_tcp_stream(host, int(port))
        await stream.send_all(f"GET /api/v1/contracts/{HEX} HTTP/1.1\r\nHost: x\r\n"
                              f"Authorization: Bearer {token}\r\n\r\n".encode())
        if client_leaves != "mid-request":
            answer = b""
            while not answer.endswith(BODY):
                answer += await stream.receive_some()
        if client_leaves != "stays":
            await stream.aclose()
        await trio.sleep(1.0)   # the request is over (answered or cut off); the connection waits
        stop.set()
        started = trio.current_time()
        with trio.fail_after(15):
            while nursery.child_tasks:
                await trio.sleep(0.05)
        assert trio.current_time() - started < 3.0
    if client_leaves == "stays":
        assert await stream.receive_some() == b""   # closed by the server on its way out
        await stream.aclose()
