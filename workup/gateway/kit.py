"""What route modules (``workup/gateway/routes/<service>.py``) use to write handlers.

A handler checks the role first, then validates its input, then forwards a typed command::

    @blueprint.post("/api/v1/jobs")
    async def create_job():
        caller = require_role("CLIENT")
        body = await json_body(CreateJobBody)
        return await forward("jobs.CreateJob", CreateJob(client_id=caller.user_id, ...))

Every failure is a :class:`ProblemError` (problem+json). Reply bodies are the service's JSON bytes,
passed through untouched.
"""

from __future__ import annotations

import contextvars
import logging
import time
from decimal import Decimal
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, cast, get_args, get_origin

import msgspec
from quart import Response, g
from quart import request as http_request

from ..cache import CacheUnavailable
from ..transport.envelope import Caller, Reply, Role
from ..problems import FieldError, ProblemError
from ..transport import DeadlineExceeded, NoResponder
from ._auth import ANONYMOUS
from ._problems import JSON, PROBLEM_JSON, RETRY_AFTER, normalize_problem, validation_problem
from ._state import gateway

__all__ = [
    "current_caller", "require_role", "require_auth", "json_body", "query_params",
    "call", "respond", "forward", "cached_forward", "ProblemError",
    "issue_token", "account_closed", "request_id", "ANONYMOUS",
]

T = TypeVar("T")
_log = logging.getLogger("workup.gateway")

# While the OpenAPI document is generated, each handler is run once in "probe" mode: the kit
# records what the handler asks for (roles, body type, query type, command) and stops it at its
# first input or RPC. Outside generation this is one context-variable read per kit call.
_probe: contextvars.ContextVar[Any] = contextvars.ContextVar("workup_gateway_probe", default=None)
_PROBE_ID = "0" * 32


class ProbeDone(Exception):
    """Raised in probe mode once the handler has shown its input (or made its call)."""


# --- who is calling ------------------------------------------------------------------------------

def current_caller() -> Caller:
    """The verified caller (``Caller(None, None)`` when anonymous)."""
    return g.get("caller", ANONYMOUS)


def require_auth() -> Caller:
    """401 when anonymous; any role otherwise."""
    probe = _probe.get()
    if probe is not None:
        probe.roles = probe.roles if probe.roles is not None else ()
        return Caller(_PROBE_ID, "CLIENT")
    caller = g.get("caller", ANONYMOUS)
    if caller.user_id is None:
        raise ProblemError(401, "authentication required")
    return caller


def require_role(*roles: str) -> Caller:
    """401 when anonymous, 403 when the caller's role is not one of ``roles``. Call it first."""
    probe = _probe.get()
    if probe is not None:
        probe.roles = tuple(roles)
        return Caller(_PROBE_ID, cast(Role, roles[0]))
    caller = require_auth()
    if caller.role not in roles:
        raise ProblemError(403, f"this route is for {' or '.join(roles)} accounts")
    return caller


def request_id() -> str:
    return g.get("request_id", "")


def issue_token(user_id: str, role: str) -> str:
    """A signed JWT for the account (the users routes add it to register/login answers)."""
    return gateway().tokens.issue(user_id, role)


def account_closed(user_id: str) -> None:
    """Tell this gateway instance at once that the account is closed (after a successful
    ``DELETE /me``); other instances learn it from the cache flag within a second."""
    gw = gateway()
    gw.revocations.mark_closed(user_id)
    if gw.hub is not None:
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


async def _read_body(limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes (413 beyond; the rest is drained by
    :class:`~workup.gateway._drain.DrainBody`)."""
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


async def json_body(type_: type[T], *, allow_empty: bool = False) -> T:
    """The request body decoded into ``type_``: 415 non-JSON, 413 over the limit, 400 malformed
    or invalid (with ``errors``). ``allow_empty``: an empty body counts as ``{}``."""
    probe = _probe.get()
    if probe is not None:
        probe.body, probe.body_optional = type_, allow_empty
        raise ProbeDone
    data = await _read_body(gateway().max_body)
    mimetype = http_request.mimetype
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


# Money must be a JSON number (API.md), but msgspec also accepts a string for a Decimal field:
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
            for f in msgspec.structs.fields(t):
                if f.encode_name in raw and _has_money(f.type):
                    _refuse_quoted_money(f.type, raw[f.encode_name], f"{path}.{f.encode_name}")


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
    probe = _probe.get()
    if probe is not None:
        probe.query = type_
        raise ProbeDone
    lists = _list_fields(type_)
    raw: dict[str, Any] = {}
    for key, values in http_request.args.lists():
        raw[key] = values if key in lists else values[-1]
    try:
        return msgspec.convert(raw, type_, strict=False)
    except msgspec.ValidationError as exc:
        raise validation_problem(exc, "query parameters") from None


# --- calling services ----------------------------------------------------------------------------

async def call(command: str, request: Any, *, timeout: float | None = None) -> Reply:
    """RPC as the current caller within the request's deadline: no reply in time → 504; the
    service frozen or without a responder → 503 with ``Retry-After``."""
    probe = _probe.get()
    if probe is not None:
        probe.command = command
        raise ProbeDone
    gw = gateway()
    now = time.monotonic()
    remaining = g.get("deadline", now + gw.request_timeout) - now
    budget = remaining if timeout is None else min(timeout, remaining)
    service = command.partition(".")[0]
    if budget <= 0:
        raise ProblemError(504, f"no time left to call the {service} service")
    try:
        reply = await gw.transport.call(command, request, caller=g.get("caller", ANONYMOUS),
                                        timeout=budget, request_id=g.get("request_id"))
    except DeadlineExceeded:
        gw.metrics.observe_rpc(service, "timeout", time.monotonic() - now)
        raise ProblemError(504, f"the {service} service did not reply in time") from None
    except NoResponder:
        gw.metrics.observe_rpc(service, "unavailable", time.monotonic() - now)
        raise ProblemError(503, f"the {service} service is unavailable") from None
    gw.metrics.observe_rpc(service, "ok" if reply.status < 500 else "error", time.monotonic() - now)
    return reply


def respond(reply: Reply) -> Response:
    """The reply as an HTTP response: status and JSON body passed through; problem+json for
    errors (``Retry-After`` on 503); an empty body is 204 (or the reply's own status)."""
    status = reply.status
    if status >= 400:
        response = Response(normalize_problem(status, reply.body), status=status, content_type=PROBLEM_JSON)
        if status == 503:
            response.headers["Retry-After"] = RETRY_AFTER
        return response
    if not reply.body:
        return Response(b"", status=204 if status in (200, 204) else status)
    return Response(reply.body, status=status, content_type=JSON)


async def forward(command: str, request: Any, *, timeout: float | None = None) -> Response:
    return respond(await call(command, request, timeout=timeout))


async def cached_forward(key: str, command: str, request: Any) -> Response:
    """Serve the cached reply body under ``key`` when there is one, else forward (the service
    fills the cache). Only for reads whose answer depends on nothing but ``key``: put the
    caller's id in the key when the answer is per caller."""
    probe = _probe.get()
    if probe is not None:
        probe.command, probe.cached = command, True
        raise ProbeDone
    try:
        body = await gateway().cache.get(key)
    except CacheUnavailable as exc:
        _log.warning("cache unavailable, forwarding: %s", exc)
        body = None
    if body is not None:
        return Response(body, status=200, content_type=JSON)
    return await forward(command, request)
