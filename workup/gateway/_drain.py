"""ASGI middleware: the last piece of every answer is sent shielded from quart-trio's
cancellation, and, for requests answered before their body was read (404, 413, 401 ...), only
once the body has arrived.

quart-trio cancels the request's tasks as soon as it sees the disconnect that hypercorn reports
while the last piece of an answer is being sent, so whatever hypercorn does next in that task
is cut off:
- on a keep-alive connection, it restarts its idle timer (``keep_alive_timeout``, which also
  bounds the time to receive the next request's headers); cut off, the connection is never timed
  out again, so one quick request followed by trickled headers held it for ever;
- when the answer ends while the body is still arriving, it closes the connection; cut off, the
  socket is never closed and the client, still sending, stalls. So there we first wait (bounded)
  until the body has arrived (quart discards it).

It also joins the answer's last piece of body to quart's empty end-of-body message: quart
sends a whole body, then an empty final message; for a small body (``JOIN_MAX``) whose
Content-Length it completes, the body is held and sent as the final message itself, so hypercorn
writes it once and finishes the answer in the same pass (with ``_server.py``'s joined head, one
socket send per answer). The bytes on the wire are the same.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio

__all__ = ["DrainBody", "DRAIN_MAX", "DRAIN_TIME", "SEND_TIME"]

DRAIN_MAX = 32 * 1024 * 1024   # bytes we are willing to read and discard
DRAIN_TIME = 10.0              # seconds we wait for the rest of the body
SEND_TIME = 5.0                # bound on the shielded final send
JOIN_MAX = 64 * 1024           # a body this small fits a socket buffer: its shielded send does not wait

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


def _may_have_body(scope: dict) -> bool:
    """A request without Content-Length (or with 0) and without Transfer-Encoding has no body:
    the common GET skips the wrapping entirely."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


async def _send_shielded(send: Callable[[dict], Awaitable[None]], message: dict) -> None:
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + SEND_TIME
        await send(message)


def _content_length(message: dict) -> int | None:
    for name, value in message.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _JoinLast:
    """The send callable for one answer: the last body piece joined to the end message, the
    final send through ``last`` (shielded, perhaps after draining)."""

    __slots__ = ("send", "last", "expected", "sent", "held")

    def __init__(self, send: Callable[[dict], Awaitable[None]],
                 last: Callable[[dict], Awaitable[None]]) -> None:
        self.send, self.last = send, last
        self.expected: int | None = None
        self.sent = 0
        self.held: bytes | None = None

    async def __call__(self, message: dict) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.expected = _content_length(message)
            await self.send(message)
            return
        held, self.held = self.held, None
        if kind != "http.response.body":
            if held is not None:
                await self.send({"type": "http.response.body", "body": held, "more_body": True})
            await self.send(message)
            return
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if held is not None:
            if not more and not body:
                await self.last({"type": "http.response.body", "body": held, "more_body": False})
                return
            await self.send({"type": "http.response.body", "body": held, "more_body": True})
        if more and body and len(body) <= JOIN_MAX and self.sent + len(body) == self.expected:
            self.sent += len(body)
            self.held = body   # the final (empty) message comes next: sent with it
            return
        self.sent += len(body)
        await (self.send if more else self.last)(message)


class DrainBody:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not _may_have_body(scope):
            async def last_shielded(message: dict) -> None:
                await _send_shielded(send, message)

            await self.app(scope, receive, _JoinLast(send, last_shielded))
            return
        done = trio.Event()
        received = 0

        async def tracking_receive() -> dict:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if (message["type"] != "http.request" or not message.get("more_body", False)
                    or received > DRAIN_MAX):
                done.set()
            return message

        async def guarded_last(message: dict) -> None:
            if not done.is_set():
                with trio.move_on_after(DRAIN_TIME):
                    await done.wait()
            await _send_shielded(send, message)

        await self.app(scope, tracking_receive, _JoinLast(send, guarded_last))
