"""How the gateway serves a service's HTTP API: one :class:`Route` type, a table of them per
service (``workup/gateway/routes/<service>.py``), and :func:`mount`, which puts a table on a
blueprint.

Every route is served the same way: the role check first (a wrong role is 403 whatever the input),
then the path ids (:func:`path_id`), then the body or query string into the command struct (400
with field errors), then the command is forwarded to the service, or its answer served from the
read cache, and the service's JSON reply is passed through untouched. The command carries no user
id: identity travels in the envelope. A table of the jobs service::

    ROUTES = [
        Route("POST", "/api/v1/jobs", ("CLIENT",), m.CreateJob, Body(m.JobDraft), status=201, reply=m.Job),
        Route("GET", "/api/v1/jobs/<job_id>", ANY, m.GetJob, ids={"job_id": "job_id"},
              cache=CacheKey(m.job_cache_key, ("job_id",)), reply=m.Job),
    ]
    mount(blueprint, "jobs", ROUTES)

What a table cannot say is a small named :data:`Hook` of the route module (the users routes issue
tokens, the payments routes read ``Idempotency-Key``). The OpenAPI document
(:mod:`workup.gateway.openapi`) is generated from the mounted Routes. The functions the handler is
made of (``require_role``, ``json_body``, ``query_params``, ``call``, ``forward``,
``cached_forward``, ...) are public for hooks and tests; every failure is a :class:`ProblemError`
(problem+json), every answer an :class:`~workup.gateway._problems.Answer`.

Two request paths serve a table route with this one handler (:func:`serve_route`): the lean ASGI
path of :mod:`workup.gateway._lean`, in front of quart, for every request whose method and path
match a mounted route; and quart, for the rest (and for apps and tests that call these functions
from their own quart views). The functions read the request through an :class:`Exchange`: the
lean path's when one is being served, else quart's request and ``g``.
"""

from __future__ import annotations

import logging
import re
import time
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar, Token
from decimal import Decimal
from types import UnionType
from typing import (Annotated, Any, Awaitable, Callable, Iterable, Protocol, TypeVar, Union, cast, get_args,
                    get_origin)

import msgspec
from quart import Blueprint, Quart, Response, g
from quart import request as http_request

from ..cache import CacheUnavailable
from ..messages import Message
from ..transport.envelope import Caller, Reply, command_name
from ..problems import FieldError, ProblemError
from ..transport import DeadlineExceeded, NoResponder
from ._auth import ANONYMOUS
from ._limits import Attempt
from ._problems import JSON, PROBLEM_JSON, RETRY_AFTER, Answer, normalize_problem, validation_problem
from ._state import Gateway, gateway
from .throttle import Kind

__all__ = [
    "Route", "Body", "Query", "NoBody", "CacheKey", "CALLER", "ANY", "PlainText", "Hook", "RouteCall",
    "Mounted", "mount", "mounted_routes", "path_id", "id_name", "PATH_ID_PATTERN", "Answer", "Exchange",
    "serving", "end_serving", "serve_route", "request_header",
    "current_caller", "require_role", "require_auth", "json_body", "query_params",
    "call", "respond", "forward", "cached_forward", "ProblemError",
    "issue_token", "account_closed", "throttled", "request_id", "ANONYMOUS",
]

T = TypeVar("T")
_log = logging.getLogger("workup.gateway")

# --- the request being served --------------------------------------------------------------------

class Exchange(Protocol):
    """One request as the route functions read it."""

    @property
    def gw(self) -> Gateway: ...

    @property
    def caller(self) -> Caller:
        """Verified (``ANONYMOUS`` when no token)."""

    @property
    def request_id(self) -> str: ...

    @property
    def deadline(self) -> float | None:
        """time.monotonic() by which the answer is due (None: the gateway's timeout from now)."""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), None when absent."""

    def query(self) -> list[tuple[str, str]]:
        """The query string's (name, value) pairs, in order."""

    @property
    def mimetype(self) -> str:
        """The Content-Type without parameters, lower case ("" when absent)."""

    @property
    def remote_addr(self) -> str | None:
        """The client's address."""

    async def body(self, limit: int) -> bytes:
        """The whole body, at most ``limit`` bytes (413 beyond)."""


class _QuartExchange:
    """The request of quart's context (its ``request`` and ``g``)."""

    @property
    def gw(self) -> Gateway:
        return gateway()

    @property
    def caller(self) -> Caller:
        return cast(Caller, g.get("caller", ANONYMOUS))

    @property
    def request_id(self) -> str:
        return cast(str, g.get("request_id", ""))

    @property
    def deadline(self) -> float | None:
        return cast("float | None", g.get("deadline"))

    def header(self, name: str) -> str | None:
        return http_request.headers.get(name)

    def query(self) -> list[tuple[str, str]]:
        return list(http_request.args.items(multi=True))

    @property
    def mimetype(self) -> str:
        return http_request.mimetype

    @property
    def remote_addr(self) -> str | None:
        return http_request.remote_addr

    async def body(self, limit: int) -> bytes:
        length = http_request.content_length
        if length is not None:
            if length > limit:
                raise ProblemError(413, f"request body over {limit} bytes")
            return await http_request.get_data(cache=True, as_text=False, parse_form_data=False)
        buf = bytearray()
        async for chunk in http_request.body:
            buf += chunk
            if len(buf) > limit:
                raise ProblemError(413, f"request body over {limit} bytes")
        return bytes(buf)


_QUART = _QuartExchange()
_serving: ContextVar[Exchange | None] = ContextVar("workup_gateway_exchange", default=None)


def _exchange() -> Exchange:
    return _serving.get() or _QUART


def serving(exchange: Exchange) -> Token[Exchange | None]:
    """Make ``exchange`` the request the route functions read in this task (the lean path)
    until :func:`end_serving` is given the token."""
    return _serving.set(exchange)


def end_serving(token: Token[Exchange | None]) -> None:
    _serving.reset(token)


# --- who is calling ------------------------------------------------------------------------------

def current_caller() -> Caller:
    """The verified caller (``Caller(None, None)`` when anonymous)."""
    return _exchange().caller


def request_header(name: str) -> str | None:
    """The request's header ``name`` (for hooks: ``Idempotency-Key``)."""
    return _exchange().header(name)


def require_auth() -> Caller:
    """401 when anonymous; any role otherwise."""
    caller = _exchange().caller
    if caller.user_id is None:
        raise ProblemError(401, "authentication required")
    return caller


def require_role(*roles: str) -> Caller:
    """401 when anonymous, 403 when the caller's role is not one of ``roles``. Call it first."""
    caller = require_auth()
    if caller.role not in roles:
        raise ProblemError(403, f"this route is for {' or '.join(roles)} accounts")
    return caller


def request_id() -> str:
    return _exchange().request_id


def issue_token(user_id: str, role: str) -> str:
    """A signed JWT for the account (the users routes add it to register/login answers)."""
    return _exchange().gw.tokens.issue(user_id, role)


def throttled(kind: Kind, *, account: str | None = None) -> AbstractAsyncContextManager[Attempt]:
    """The request as an attempt under the abuse limits of ``kind``, from the client's address
    (and for ``account``): 429 past them (see :mod:`workup.gateway.throttle`)."""
    exchange = _exchange()
    return exchange.gw.throttle.attempt(kind, address=exchange.remote_addr, account=account)


def account_closed(user_id: str) -> None:
    """Tell this gateway instance at once that the account is closed (after a successful
    ``DELETE /me``); other instances learn it from the cache flag within a second."""
    gw = _exchange().gw
    gw.revocations.mark_closed(user_id)
    gw.hub.disconnect(user_id)


# --- input ---------------------------------------------------------------------------------------

_decoders: dict[Any, msgspec.json.Decoder] = {}


def _decoder(type_: Any) -> msgspec.json.Decoder:
    dec = _decoders.get(type_)
    if dec is None:
        dec = _decoders[type_] = msgspec.json.Decoder(type_)
    return dec


def _is_json(mimetype: str) -> bool:
    return mimetype == "application/json" or mimetype.endswith("+json")


async def json_body(type_: type[T], *, allow_empty: bool = False) -> T:
    """The request body decoded into ``type_``: 415 non-JSON, 413 over the limit, 400 malformed
    or invalid (with ``errors``). ``allow_empty``: an empty body counts as ``{}``."""
    exchange = _exchange()
    data = await exchange.body(exchange.gw.max_body)   # the rest of a refused body is drained (_drain.py, _lean.py)
    mimetype = exchange.mimetype
    if not data.strip():
        if allow_empty:
            try:
                return msgspec.convert({}, type_)
            except msgspec.ValidationError as exc:
                raise validation_problem(exc) from None
        raise ProblemError(400, "a JSON request body is required",
                           errors=[FieldError(field="$", message="missing request body")])
    if mimetype and not _is_json(mimetype):
        raise ProblemError(415, f"expected application/json, got {mimetype}")
    try:
        value = _decoder(type_).decode(data)
    except msgspec.ValidationError as exc:
        raise validation_problem(exc) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        if not mimetype:
            raise ProblemError(415, "the request body is not JSON") from None
        reason = "the body is not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
        raise ProblemError(400, f"malformed JSON: {reason}") from None
    if _has_money(type_):
        _refuse_quoted_money(type_, msgspec.json.decode(data), "$")
    return value


# Money must be a JSON number (docs/api.md), but msgspec also accepts a string for a Decimal field:
# for body types with Decimal fields, look at the raw JSON once more and refuse quoted amounts.
_money_types: dict[Any, bool] = {}


def _unwrap(tp: Any) -> list[Any]:
    """The concrete types a field annotation may hold (Annotated and Optional unwrapped)."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _unwrap(get_args(tp)[0])
    if origin in (Union, UnionType):
        return [t for arg in get_args(tp) for t in _unwrap(arg)]
    return [tp]


def _has_money(tp: Any) -> bool:
    known = _money_types.get(tp)
    if known is None:
        _money_types[tp] = False  # recursion guard
        known = False
        for t in _unwrap(tp):
            if t is Decimal:
                known = True
            elif get_origin(t) in (list, tuple, set, frozenset):
                known = any(_has_money(a) for a in get_args(t) if a is not Ellipsis)
            elif isinstance(t, type) and issubclass(t, msgspec.Struct):
                known = any(_has_money(f.type) for f in msgspec.structs.fields(t))
            if known:
                break
        _money_types[tp] = known
    return known


def _refuse_quoted_money(tp: Any, raw: Any, path: str) -> None:
    for t in _unwrap(tp):
        if t is Decimal and isinstance(raw, str):
            field = path.rsplit(".", 1)[-1] if path != "$" else path
            raise ProblemError(400, f"{path.removeprefix('$.')} must be a JSON number",
                               errors=[FieldError(field=path.removeprefix("$."), message=f"{field} must be a JSON number")])
        if get_origin(t) in (list, tuple, set, frozenset) and isinstance(raw, list):
            (item,) = get_args(t)[:1] or (Any,)
            if _has_money(item):
                for i, element in enumerate(raw):
                    _refuse_quoted_money(item, element, f"{path}[{i}]")
        elif isinstance(t, type) and issubclass(t, msgspec.Struct) and isinstance(raw, dict):
            for name, field_type in _money_fields(t):
                if name in raw:
                    _refuse_quoted_money(field_type, raw[name], f"{path}.{name}")


_struct_money: dict[type, tuple[tuple[str, Any], ...]] = {}


def _money_fields(t: type) -> tuple[tuple[str, Any], ...]:
    """(JSON name, type) of the fields of struct ``t`` that hold money somewhere, once per type:
    ``msgspec.structs.fields`` evaluates the annotations again on every call."""
    found = _struct_money.get(t)
    if found is None:
        found = _struct_money[t] = tuple((f.encode_name, f.type) for f in msgspec.structs.fields(t)
                                         if _has_money(f.type))
    return found


_query_lists: dict[Any, frozenset[str]] = {}


def _list_fields(type_: Any) -> frozenset[str]:
    names = _query_lists.get(type_)
    if names is None:
        names = frozenset(
            f.encode_name for f in msgspec.structs.fields(type_)
            if get_origin(f.type) in (list, set, frozenset, tuple)
            or any(get_origin(a) in (list, set, frozenset, tuple) for a in get_args(f.type))
        )
        _query_lists[type_] = names
    return names


def query_params(type_: type[T]) -> T:
    """The query string validated into ``type_`` (strings converted to the field types; 400 with
    ``errors`` on failure). Repeated parameters fill list fields."""
    lists = _list_fields(type_)
    raw: dict[str, Any] = {}
    for key, value in _exchange().query():
        if key in lists:
            raw.setdefault(key, []).append(value)
        else:
            raw[key] = value
    try:
        return msgspec.convert(raw, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_problem(exc, "query parameters") from None


# --- calling services ----------------------------------------------------------------------------

async def call(command: str, request: msgspec.Struct, *, timeout: float | None = None) -> Reply:
    """RPC as the current caller within the request's deadline: no reply in time → 504; the
    service frozen or without a responder → 503 with ``Retry-After``."""
    exchange = _exchange()
    gw = exchange.gw
    now = time.monotonic()
    deadline = exchange.deadline
    remaining = (now + gw.request_timeout if deadline is None else deadline) - now
    budget = remaining if timeout is None else min(timeout, remaining)
    service = command.partition(".")[0]
    if budget <= 0:
        raise ProblemError(504, f"no time left to call the {service} service")
    try:
        reply = await gw.transport.call(command, request, caller=exchange.caller,
                                        timeout=budget, request_id=exchange.request_id or None)
    except DeadlineExceeded:
        gw.metrics.observe_rpc(service, "timeout", time.monotonic() - now)
        raise ProblemError(504, f"the {service} service did not reply in time") from None
    except NoResponder:
        gw.metrics.observe_rpc(service, "unavailable", time.monotonic() - now)
        raise ProblemError(503, f"the {service} service is unavailable") from None
    gw.metrics.observe_rpc(service, "ok" if reply.status < 500 else "error", time.monotonic() - now)
    return reply


def respond(reply: Reply) -> Answer:
    """The reply as an HTTP answer: status and JSON body passed through; problem+json for
    errors (``Retry-After`` on 503); an empty body is 204 (or the reply's own status)."""
    status = reply.status
    if status >= 400:
        return Answer(status, normalize_problem(status, reply.body), PROBLEM_JSON,
                      {"Retry-After": RETRY_AFTER} if status == 503 else None)
    if not reply.body:
        return Answer(204 if status in (200, 204) else status)
    return Answer(status, reply.body, JSON)


async def forward(command: str, request: msgspec.Struct, *, timeout: float | None = None) -> Answer:
    return respond(await call(command, request, timeout=timeout))


async def cached_forward(key: str, command: str, request: msgspec.Struct) -> Answer:
    """Serve the cached reply body under ``key`` when there is one, else forward (the service
    fills the cache). Only for reads whose answer depends on nothing but ``key``: put the
    caller's id in the key when the answer is per caller."""
    try:
        body = await _exchange().gw.cache.get(key)
    except CacheUnavailable as exc:
        _log.warning("cache unavailable, forwarding: %s", exc)
        body = None
    if body is not None:
        return Answer(200, body, JSON)
    return await forward(command, request)


# --- path ids ------------------------------------------------------------------------------------

# docs/api.md only says ids are opaque; every service makes them as 32 lower-case hex digits (a uuid4,
# or a uuid5/sha256 derived from the request id). So one rule for every route of every service: a
# path id is a UUID written as 32 hex digits or in the hyphenated 8-4-4-4-12 form, in either case,
# and the command gets the services' form. Anything else is the same 400 everywhere, before any
# service is asked; a well-formed id that names nothing is the service's 404.
_PATH_ID = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
# the same rule for /openapi.json (JSON Schema patterns are unanchored searches)
PATH_ID_PATTERN = f"^(?:{_PATH_ID.pattern})$"


def path_id(value: str, name: str = "id") -> str:
    """A path id in the services' form (32 lower-case hex), or 400 naming ``name``."""
    if not _PATH_ID.fullmatch(value):
        raise ProblemError(400, f"{name} is not a valid id", errors=[
            FieldError(field=name, message="must be a UUID: 32 hexadecimal digits, hyphenated 8-4-4-4-12 or not")])
    return value.replace("-", "").lower()


def id_name(param: str, params: Iterable[str]) -> str:
    """How a 400 names a path id: docs/api.md's name, ``id`` when the route has one, else the camelCase
    parameter (``/jobs/{jobId}/proposals/{proposalId}/accept``)."""
    if len(list(params)) == 1:
        return "id"
    first, *rest = param.split("_")
    return first + "".join(word.title() for word in rest)


# --- the one Route type --------------------------------------------------------------------------

ANY: tuple[str, ...] = ()   # Route.roles: any authenticated role (None: public)
CALLER = "<caller>"         # in CacheKey.args: the caller's user id


class NoBody(Message):
    """An empty body or ``{}``."""


class Body(msgspec.Struct, frozen=True):
    """The command comes from the JSON body, decoded into ``struct`` (the command itself when
    None) and completed with the path ids. ``fields`` turns a body that is not the command into
    the command's fields (default: the body's own fields)."""
    struct: type[Message] | None = None
    allow_empty: bool = False                                    # an empty body counts as ``{}``
    fields: Callable[[Message], dict[str, object]] | None = None


class Query(msgspec.Struct, frozen=True):
    """The command comes from the query string, validated into ``struct`` (the command itself
    when None); repeated parameters fill list fields."""
    struct: type[Message] | None = None


class CacheKey(msgspec.Struct, frozen=True):
    """A read the gateway serves from the read cache when the service has filled it. ``function``
    is the entity's key function (``workup/messages/<service>.py``), called with ``args``: each
    is :data:`CALLER` or a field of the command."""
    function: Callable[..., str]
    args: tuple[str, ...]

    def of(self, caller: Caller, command: Message) -> str:
        return self.function(*(caller.user_id if a == CALLER else getattr(command, a) for a in self.args))


class PlainText:
    """``Route.reply`` of a route whose success answer is ``text/plain`` (its hook makes it so)."""


class Route(msgspec.Struct, frozen=True):
    """One HTTP route of a service, as data: the handler (:func:`mount`) and the OpenAPI document
    both read it."""
    method: str
    path: str                           # quart rule, absolute; path ids as <name>
    roles: tuple[str, ...] | None       # None: public; ANY: any authenticated role
    command: type[Message]              # forwarded as "<service>.<command name>"
    input: Body | Query | None = None   # None: the command is made of the path ids alone
    status: int = 200                   # success status (OpenAPI; the service sets the real one)
    reply: object = None                # success reply type (OpenAPI)
    ids: dict[str, str] = {}            # path id -> the command field it fills (checked by path_id)
    cache: CacheKey | None = None       # served from the read cache when filled
    errors: tuple[int, ...] = ()        # route-specific error statuses (OpenAPI)
    hook: Hook | None = None            # replaces "forward the command"; the role check stays first
    summary: str = ""                   # OpenAPI and docs/api.md: one line, the API's own words
    description: str = ""               # OpenAPI and docs/api.md: what a caller needs to know

    @property
    def source(self) -> str:
        """Where the command comes from: ``body``, ``query`` or ``none``."""
        return "none" if self.input is None else "query" if isinstance(self.input, Query) else "body"


class Mounted(msgspec.Struct, frozen=True):
    """A Route as mounted for a service."""
    service: str
    route: Route

    @property
    def command(self) -> str:
        return command_name(self.service, self.route.command)


class RouteCall(msgspec.Struct):
    """One request being served by a Route: what a hook works with."""
    mounted: Mounted
    caller: Caller                      # after the role check
    params: dict[str, str]              # the raw path parameters

    async def command(self, **extra: object) -> Message:
        """The command from the path ids and the body or query (``extra``: more of its fields)."""
        route = self.mounted.route
        ids = {field: path_id(self.params[param], id_name(param, route.ids)) for param, field in route.ids.items()}
        given = route.input
        if given is None:
            return route.command(**ids, **extra)
        struct = given.struct or route.command
        if isinstance(given, Query):
            value = query_params(struct)
        else:
            value = await json_body(struct, allow_empty=given.allow_empty)
        if type(value) is route.command:
            return msgspec.structs.replace(value, **ids, **extra) if ids or extra else value
        fields = given.fields(value) if isinstance(given, Body) and given.fields else msgspec.structs.asdict(value)
        return route.command(**fields, **ids, **extra)

    async def call(self, command: Message) -> Reply:
        return await call(self.mounted.command, command)

    async def forward(self, command: Message) -> Answer:
        """What a route does by default: the cached answer when the route has one, else the
        service's reply."""
        key = self.mounted.route.cache
        if key is not None:
            return await cached_forward(key.of(self.caller, command), self.mounted.command, command)
        return await forward(self.mounted.command, command)


Hook = Callable[[RouteCall], Awaitable[Answer]]


def _check_role(roles: tuple[str, ...] | None) -> Caller:
    if roles is None:
        return current_caller()
    return require_role(*roles) if roles else require_auth()


async def serve_route(mounted: Mounted, params: dict[str, str]) -> Answer:
    """What every table route does, on either request path: the role check first (a wrong role
    is 403 whatever the input), then the hook, or the command forwarded."""
    route = mounted.route
    served = RouteCall(mounted, _check_role(route.roles), params)
    if route.hook is not None:
        return await route.hook(served)
    return await served.forward(await served.command())


def _handler(mounted: Mounted) -> Callable[..., Awaitable[Response]]:
    async def handle(**params: str) -> Response:
        return (await serve_route(mounted, params)).response()

    return handle


_MOUNTED = "workup.gateway.routes"


def mount(blueprint: Blueprint, service: str, routes: Iterable[Route]) -> None:
    """Serve ``routes`` on ``blueprint``, forwarding to ``service``; the app the blueprint is
    registered on remembers them for its OpenAPI document (:func:`mounted_routes`)."""
    table = [Mounted(service, route) for route in routes]
    for entry in table:
        route = entry.route
        endpoint = re.sub(r"\W+", "_", f"{route.method.lower()}{route.path}").strip("_")
        blueprint.add_url_rule(route.path, endpoint=endpoint, view_func=_handler(entry), methods=[route.method])
    blueprint.record_once(lambda state: mounted_routes(cast(Quart, state.app)).extend(table))


def mounted_routes(app: Quart) -> list[Mounted]:
    """Every Route mounted on ``app``, in the order its blueprints were registered."""
    found: list[Mounted] = app.extensions.setdefault(_MOUNTED, [])
    return found
