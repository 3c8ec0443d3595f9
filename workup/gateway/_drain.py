"""ASGI middleware for requests answered before their body was read (404, 413, 401 ...).

Two problems of quart-trio on hypercorn show up then: hypercorn closes the connection when the
answer ends while the body is still arriving, and quart-trio cancels the task that is doing that
close (it sees the resulting disconnect), so the socket is never closed and the client, still
sending, stalls. So before the last piece of such an answer goes out, we wait (bounded) until the
body has arrived (quart discards it), then send that piece shielded from cancellation.
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


class DrainBody:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]],
                       send: Callable[[dict], Awaitable[None]]) -> None:
        if scope["type"] != "http" or not _may_have_body(scope):
            await self.app(scope, receive, send)
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
            if (done.is_set() or message["type"] != "http.response.body"
                    or message.get("more_body", False)):
                await send(message)
                return
            with trio.move_on_after(DRAIN_TIME):
                await done.wait()
            with trio.CancelScope(shield=True) as scope_:
                scope_.deadline = trio.current_time() + SEND_TIME
                await send(message)

        await self.app(scope, tracking_receive, guarded_send)
