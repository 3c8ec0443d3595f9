"""Request bodies with back-pressure.

Quart's ASGI layer reads the request body as fast as the client sends it and appends it to an
unbounded buffer; a handler that streams to disk slower than the network would then hold the upload
in memory. Here the reader stops pulling from the server (so hypercorn stops reading the socket and
TCP pushes back on the client) while more than :data:`HIGH_WATER` bytes wait for the handler.

It also shields the last message of a response: hypercorn closes a ``Connection: close`` socket
from inside that send, and quart-trio cancels the request's tasks as soon as hypercorn reports the
stream closed, which interrupted the close half-way and left the client waiting forever.
"""

from __future__ import annotations

from typing import cast

import trio
from quart_trio.asgi import TrioASGIHTTPConnection
from quart_trio.wrappers.request import TrioBody, TrioRequest

__all__ = ["HIGH_WATER", "FlowBody", "FlowRequest", "FlowConnection"]

HIGH_WATER = 1024 * 1024


class FlowBody(TrioBody):
    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self._taken = trio.Event()

    @property
    def complete(self) -> bool:
        """Whether the client has sent the whole body."""
        return self._complete.is_set()

    async def __anext__(self) -> bytes:
        data = await super().__anext__()
        self._taken.set()
        return data

    async def wait_for_room(self) -> None:
        """Return once the handler has taken the buffered data (or the body failed)."""
        while len(self._data) >= HIGH_WATER and self._must_raise is None:
            self._taken = trio.Event()
            await self._taken.wait()


class FlowRequest(TrioRequest):
    body_class = FlowBody


class FlowConnection(TrioASGIHTTPConnection):
    async def handle_request(self, nursery: trio.Nursery, request: FlowRequest, send) -> None:  # type: ignore[override]
        async def send_last_shielded(message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await super().handle_request(nursery, request, send_last_shielded)

    async def handle_messages(self, nursery: trio.Nursery, request: FlowRequest, receive) -> None:  # type: ignore[override]
        body = cast(FlowBody, request.body)  # FlowRequest.body_class
        while True:
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body.set_complete()
                else:
                    await body.wait_for_room()
            elif message["type"] == "http.disconnect":
                break
        nursery.cancel_scope.cancel()
