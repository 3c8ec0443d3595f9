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
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio

__all__ = ["DrainBody", "DRAIN_MAX", "DRAIN_TIME", "SEND_TIME"]

DRAIN_MAX = 32 * 1024 * 1024   # bytes we are willing to read and discard
DRAIN_TIME = 10.0              # seconds we wait for the rest of the body
SEND_TIME = 5.0                # bound on the shielded final send

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


def _is_last(message: dict) -> bool:
    return message["type"] == "http.response.body" and not message.get("more_body", False)


async def _send_shielded(send: Callable[[dict], Awaitable[None]], message: dict) -> None:
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + SEND_TIME
        await send(message)


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
                if _is_last(message):
                    await _send_shielded(send, message)
                else:
                    await send(message)

            await self.app(scope, receive, last_shielded)
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

        async def guarded_send(message: dict) -> None:
            if not _is_last(message):
                await send(message)
                return
            if not done.is_set():
                with trio.move_on_after(DRAIN_TIME):
                    await done.wait()
            await _send_shielded(send, message)

        await self.app(scope, tracking_receive, guarded_send)
