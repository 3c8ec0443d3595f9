"""What both request paths of the gateway share around a route: the request id, the answer to an
error a route raised, and the bookkeeping after the answer (metrics, access log). quart's hooks
(``app.py``) and the lean path (``_lean.py``) both use these, so a request is handled one way
whichever path served it."""

from __future__ import annotations

import json
import logging
import re
from typing import Iterable, NamedTuple

import msgspec

from ..problems import ProblemError
from ..transport.envelope import Caller, new_request_id
from ._limits import Throttled
from ._problems import Answer, problem_answer, validation_problem
from ._state import Gateway

__all__ = ["error_answer", "observe", "request_id_from", "request_headers", "RequestHeaders",
           "REQUEST_ID_PATTERN", "WWW_AUTHENTICATE"]

_log = logging.getLogger("workup.gateway")
_access = logging.getLogger("workup.access")
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"   # a client's X-Request-Id (else the gateway makes one)
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
WWW_AUTHENTICATE = 'Bearer realm="workup"'


def error_answer(exc: Exception, request_id: str, method: str, path: str) -> Answer:
    """The answer to an error a route raised: its problem (401 with ``WWW-Authenticate``, 429
    with ``Retry-After``), 400 for an invalid command, else a logged 500 naming the request."""
    if isinstance(exc, ProblemError):
        headers = {"WWW-Authenticate": WWW_AUTHENTICATE} if exc.status == 401 else None
        if isinstance(exc, Throttled):
            headers = {"Retry-After": str(exc.retry_after)}
        return problem_answer(exc.problem, headers)
    if isinstance(exc, msgspec.ValidationError):
        return problem_answer(validation_problem(exc, "request").problem)
    _log.error("unhandled error in %s %s (request %s)", method, path, request_id, exc_info=exc)
    return problem_answer(ProblemError(500, f"internal error (request {request_id})").problem)


class RequestHeaders(NamedTuple):
    """The request headers the gateway itself reads, as sent (raw ASGI header values decoded)."""
    authorization: str | None
    request_id: str | None
    content_length: bytes | None    # h11 has checked it (and refused differing copies)
    chunked: bool                   # Transfer-Encoding given


def request_headers(raw: Iterable[tuple[bytes, bytes]]) -> RequestHeaders:
    """One pass over the raw ASGI headers."""
    auth = rid = length = None
    chunked = False
    for name, value in raw:
        if name == b"authorization":
            auth = value.decode("latin-1")
        elif name == b"x-request-id":
            rid = value.decode("latin-1")
        elif name == b"content-length":
            length = length or value
        elif name == b"transfer-encoding":
            chunked = True
    return RequestHeaders(auth, rid, length, chunked)


def request_id_from(given: str | None) -> str:
    """The client's X-Request-Id when it is a valid one, else a new id."""
    return given if given and _REQUEST_ID.match(given) else new_request_id()


def observe(gw: Gateway, method: str, path: str, rule: str, status: int, elapsed: float,
            request_id: str, caller: Caller) -> None:
    """The request in the metrics (by route template) and in the access log."""
    gw.metrics.observe_request(method, rule, status, elapsed)
    if _access.isEnabledFor(logging.INFO):
        _access.info(json.dumps({
            "requestId": request_id, "method": method, "path": path, "route": rule,
            "status": status, "ms": round(elapsed * 1000, 3),
            "user": caller.user_id, "role": caller.role,
        }, separators=(",", ":")))
