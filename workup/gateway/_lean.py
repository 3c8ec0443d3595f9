"""The lean request path: the route tables' routes served straight from ASGI, in front of quart.

Under the flow bench (issue 15) quart's machinery around a route's handler (request and response
objects, context locals, werkzeug routing, before/after hooks) and the ASGI message passing of
:class:`~workup.gateway._drain.DrainBody` cost the gateway processes more CPU than the handler
itself. :class:`LeanRoutes` matches the method and path of an HTTP request against the mounted
routes (:func:`~workup.gateway.routing.mounted_routes`, compiled once into a tree: a static
segment wins over a path parameter, as in werkzeug) and serves a match itself with the one
handler of every table route (:func:`~workup.gateway.routing.serve_route`), doing what quart's
hooks in ``app.py`` do around it: the request id (the client's X-Request-Id when valid), the body
limit (413), the token and closed-account check (401 with ``WWW-Authenticate``), problem+json for
every error (a logged 500 naming the request id on an unexpected one), X-Request-Id and
``X-Content-Type-Options: nosniff`` on the answer, the request metrics by route template and the
access log line. The answer is one ``http.response.start`` and one final body message (with
``_server.py``'s joined head: one socket send).

Everything else goes to quart unchanged: a path or method no table route has (so quart's 404,
405, OPTIONS and HEAD), WebSockets, lifespan, the gateway's own routes (health, metrics, docs,
OpenAPI) and the media routes.

Differences from quart that a client cannot see: a request's body is read here, by the route
(bounded by ``max_body``; quart's ``BODY_TIMEOUT`` bounds its arrival, 408 beyond); an answer
given before the body was read (401, 403, 413, a bad id) is sent once the rest of the body has
arrived (at most ``DRAIN_MAX`` bytes, ``DRAIN_TIME`` seconds, as ``_drain.py`` does), so the
connection stays usable; nothing here cancels a request whose client went away (quart-trio does):
its RPC runs to its answer or its deadline, and the answer is dropped by hypercorn. The final send
is bounded (``SEND_TIME``) and shielded as on the quart path. A client gone while its body was
still arriving gets no answer.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import parse_qsl

import trio

from ..logs import bind_request_id
from ..problems import ProblemError
from ..transport.envelope import Caller
from ._answer import error_answer, observe, request_headers, request_id_from
from ._auth import ANONYMOUS, authenticate
from ._drain import DRAIN_MAX, DRAIN_TIME, SEND_TIME
from ._problems import DEFAULT_TYPE, Answer
from ._state import Gateway
from .routing import Mounted, end_serving, serve_route, serving

__all__ = ["LeanRoutes", "RouteTree"]

ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


class _Node:
    __slots__ = ("static", "params", "methods")

    def __init__(self) -> None:
        self.static: dict[str, _Node] = {}
        self.params: dict[str, _Node] = {}          # parameter name -> the rest
        self.methods: dict[str, Mounted] = {}


class RouteTree:
    """The mounted routes by path segment: :meth:`match` finds the route of a method and path
    and its path parameters, or None (quart answers then)."""

    def __init__(self, routes: Iterable[Mounted]) -> None:
        self._root = _Node()
        self._static: dict[tuple[str, str], Mounted] = {}   # routes without parameters: one lookup
        for mounted in routes:
            route = mounted.route
            if "<" not in route.path:
                self._static.setdefault((route.method, route.path), mounted)
            node = self._root
            for segment in route.path.split("/")[1:]:
                if segment.startswith("<") and segment.endswith(">"):
                    node = node.params.setdefault(segment[1:-1], _Node())
                else:
                    node = node.static.setdefault(segment, _Node())
            node.methods.setdefault(route.method, mounted)

    def match(self, method: str, path: str) -> tuple[Mounted, dict[str, str]] | None:
        found = self._static.get((method, path))
        if found is not None:
            return found, {}
        if not path.startswith("/"):
            return None
        params: dict[str, str] = {}
        mounted = self._walk(self._root, path.split("/")[1:], 0, method, params)
        return None if mounted is None else (mounted, params)

    def _walk(self, node: _Node, segments: list[str], i: int, method: str,
              params: dict[str, str]) -> Mounted | None:
        if i == len(segments):
            return node.methods.get(method)
        segment = segments[i]
        child = node.static.get(segment)
        if child is not None:
            found = self._walk(child, segments, i + 1, method, params)
            if found is not None:
                return found
        if segment:   # a parameter is one non-empty segment (werkzeug's default converter)
            for name, child in node.params.items():
                found = self._walk(child, segments, i + 1, method, params)
                if found is not None:
                    params[name] = segment
                    return found
        return None


class _AsgiExchange:
    """One request served here, as :class:`~workup.gateway.routing.Exchange`."""

    __slots__ = ("gw", "caller", "request_id", "deadline", "length", "has_body", "_scope", "_receive",
                 "_body_timeout", "_complete")

    def __init__(self, gw: Gateway, scope: dict, receive: Receive, body_timeout: float) -> None:
        self.gw = gw
        self.caller: Caller = ANONYMOUS
        self.request_id = ""
        self.deadline: float | None = None
        self.length: int | None = None   # Content-Length; None for a chunked body or none at all
        self.has_body = False            # a body may follow the head (to read or drain)
        self._scope, self._receive, self._body_timeout = scope, receive, body_timeout
        self._complete = False

    def header(self, name: str) -> str | None:
        key = name.lower().encode("latin-1")
        for header, value in self._scope["headers"]:
            if header == key:
                return value.decode("latin-1")
        return None

    def query(self) -> list[tuple[str, str]]:
        # what werkzeug's Request.args does with the query string
        return parse_qsl(self._scope["query_string"].decode(), keep_blank_values=True, errors="werkzeug.url_quote")

    @property
    def mimetype(self) -> str:
        value = self.header("content-type")
        return "" if value is None else value.partition(";")[0].strip().lower()

    @property
    def remote_addr(self) -> str | None:
        return (self._scope.get("client") or ["<local>"])[0]

    async def body(self, limit: int) -> bytes:
        length = self.length
        if length is not None and length > limit:
            raise ProblemError(413, f"request body over {limit} bytes")
        buf = bytearray()
        with trio.move_on_after(self._body_timeout) as scope:
            while not self._complete:
                message = await self._receive()
                if message["type"] != "http.request":
                    raise _ClientGone()
                buf += message.get("body", b"")
                self._complete = not message.get("more_body", False)
                if len(buf) > limit:
                    raise ProblemError(413, f"request body over {limit} bytes")
        if scope.cancelled_caught:
            raise ProblemError(408, "")   # quart's BODY_TIMEOUT answer
        return bytes(buf)

    async def drain(self) -> None:
        """Read and discard what is left of the body (bounded), so the answer finds the
        connection ready for the next request."""
        received = 0
        with trio.move_on_after(DRAIN_TIME):
            while not self._complete and received <= DRAIN_MAX:
                message = await self._receive()
                if message["type"] != "http.request":
                    return
                received += len(message.get("body", b""))
                self._complete = not message.get("more_body", False)


class _ClientGone(Exception):
    """The client disconnected while its body was being read."""


class LeanRoutes:
    """ASGI: the mounted table routes of ``quart_app`` served here, everything else by ``app``
    (quart's ASGI app, with its wrappers)."""

    def __init__(self, app: ASGIApp, gw: Gateway, routes: Callable[[], Iterable[Mounted]],
                 body_timeout: float) -> None:
        self.app, self.gw = app, gw
        self._routes = routes
        self._tree: RouteTree | None = None
        self._body_timeout = body_timeout

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            tree = self._tree
            if tree is None:   # built at the first request: every blueprint is registered by then
                tree = self._tree = RouteTree(self._routes())
            found = tree.match(scope["method"], scope["path"])
            if found is not None:
                await self._serve(found[0], found[1], scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, mounted: Mounted, params: dict[str, str], scope: dict, receive: Receive,
                     send: Send) -> None:
        started = time.perf_counter()
        gw = self.gw
        exchange = _AsgiExchange(gw, scope, receive, self._body_timeout)
        token = serving(exchange)
        method, path = scope["method"], scope["path"]
        try:
            auth, rid, length, chunked = request_headers(scope["headers"])
            if chunked:
                exchange.has_body = True
            elif length is not None:
                exchange.length = int(length)
                exchange.has_body = exchange.length > 0
            exchange.request_id = rid = request_id_from(rid)
            bind_request_id(rid)   # this request's log lines name it (workup/logs.py)
            exchange.deadline = time.monotonic() + gw.request_timeout
            try:
                if exchange.length is not None and exchange.length > gw.max_body:
                    raise ProblemError(413, f"request body over {gw.max_body} bytes")
                exchange.caller = await authenticate(auth, gw)
                answer = await serve_route(mounted, params)
            except _ClientGone:
                return
            except Exception as exc:
                answer = error_answer(exc, rid, method, path)
            observe(gw, method, path, mounted.route.path, answer.status, time.perf_counter() - started,
                    rid, exchange.caller)
            if exchange.has_body and not exchange._complete:
                await exchange.drain()
            await _send(send, answer, rid)
        finally:
            end_serving(token)


async def _send(send: Send, answer: Answer, request_id: str) -> None:
    """The answer in two ASGI messages: the head, and the whole body as the final message."""
    headers = [(b"content-type", (answer.content_type or DEFAULT_TYPE).encode()),
               (b"content-length", str(len(answer.body)).encode())]
    if answer.headers:
        headers += [(name.lower().encode(), value.encode()) for name, value in answer.headers.items()]
    headers += [(b"x-request-id", request_id.encode()), (b"x-content-type-options", b"nosniff")]
    with trio.CancelScope(shield=True) as scope:
        scope.deadline = trio.current_time() + SEND_TIME
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body, "more_body": False})
