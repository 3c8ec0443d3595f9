"""The message envelope every service speaks, over RabbitMQ or the in-process transport.

A request is a msgpack-encoded command struct plus an :class:`Envelope` of metadata. Over AMQP the
metadata travels in the message properties: ``type`` = :attr:`Envelope.command` (``"jobs.CreateJob"``),
``message_id`` = request id, ``correlation_id``/``reply_to`` for the reply, and the headers
``caller``, ``role``, ``deadline`` and ``identity`` (the signed caller assertion that proves the
other three, ``transport/identity.py``; see :func:`to_headers`/:func:`from_headers`, which
``transport/rabbitmq.py`` uses on every call and every received request). A reply is a
msgpack :class:`Reply`: a status code and a **JSON** body (the reply is usually bound for HTTP, so
the gateway passes it through untouched; money is written as exact JSON numbers), which for
``status >= 400`` is a :class:`~workup.problems.Problem`. Structs use ``rename="camel"`` so the
JSON field names are the API's.
"""

from __future__ import annotations

import time
from typing import Any, Literal, cast, get_args

import msgspec

from ..ids import new_id
from ..problems import Problem, ProblemError

__all__ = [
    "Role", "ROLES", "Caller", "ANONYMOUS", "Envelope", "Reply", "Event", "SERVICE_CALLER",
    "DEFAULT_TIMEOUT",
    "encode", "decode", "encode_json", "reply_body", "ok_reply", "problem_reply", "raise_for_problem",
    "to_headers", "from_headers", "new_request_id", "command_name",
]

Role = Literal["CLIENT", "FREELANCER", "ADMIN", "SERVICE"]
ROLES: frozenset[str] = frozenset(get_args(Role))
# seconds a request that arrives without a deadline header may take
DEFAULT_TIMEOUT = 30.0


class Caller(msgspec.Struct, frozen=True, omit_defaults=True):
    """Who asked: set by the gateway from the verified JWT, or ``SERVICE`` for service-to-service
    calls (never reachable from HTTP)."""

    user_id: str | None = None
    role: Role | None = None


SERVICE_CALLER = Caller(user_id=None, role="SERVICE")
ANONYMOUS = Caller()


class Envelope(msgspec.Struct, frozen=True):
    command: str       # "<service>.<RequestStructName>"
    caller: Caller
    deadline: float    # unix time; a worker drops work whose deadline has passed
    request_id: str
    assertion: str = ""  # signed proof of the fields above (transport/identity.py); "" = none


class Reply(msgspec.Struct, array_like=True):
    status: int
    body: bytes        # JSON of the result (b"" for none), or of a Problem when status >= 400


class Event(msgspec.Struct, frozen=True):
    """A notification on the ``workup.events`` topic exchange, routing key = :attr:`type`."""

    type: str                  # "proposal.accepted", ...
    at: str                    # RFC 3339 UTC
    recipients: list[str]      # user ids
    data: dict[str, str]


_encoder = msgspec.msgpack.Encoder()
_json_encoder = msgspec.json.Encoder(decimal_format="number")


def encode(obj: Any) -> bytes:
    """msgpack, for request bodies and envelopes."""
    return _encoder.encode(obj)


def decode(data: bytes, type: Any = Any) -> Any:
    return msgspec.msgpack.decode(data, type=type)


def encode_json(obj: Any) -> bytes:
    """JSON with Decimals as exact numbers, for reply bodies."""
    return _json_encoder.encode(obj)


def ok_reply(body: Any, status: int = 200) -> Reply:
    return Reply(status=status, body=b"" if body is None else encode_json(body))


def problem_reply(problem: Problem) -> Reply:
    return Reply(status=problem.status, body=encode_json(problem))


def raise_for_problem(reply: Reply) -> Reply:
    """Raise the reply's problem as a :class:`ProblemError` when its status is an error."""
    if reply.status >= 400:
        p = msgspec.json.decode(reply.body, type=Problem)
        raise ProblemError(p.status, p.detail, title=p.title, errors=p.errors)
    return reply


def reply_body(reply: Reply, type: Any = Any) -> Any:
    """The decoded body of a successful reply (raises its problem otherwise)."""
    raise_for_problem(reply)
    return msgspec.json.decode(reply.body, type=type) if reply.body else None


def command_name(service: str, request_type: type) -> str:
    return f"{service}.{request_type.__name__}"


def new_request_id() -> str:
    return new_id()


def to_headers(env: Envelope) -> dict[str, Any]:
    """The AMQP headers that carry ``env``'s caller, deadline and assertion (the command and the request id
    travel in the ``type`` and ``message_id`` properties)."""
    return {
        "caller": env.caller.user_id or "",
        "role": env.caller.role or "",
        "deadline": env.deadline,
        "identity": env.assertion,
    }


def from_headers(command: str, request_id: str | None, headers: dict[str, Any] | None) -> Envelope:
    """The inverse of :func:`to_headers`. Runs for every received request: a role outside
    :data:`ROLES` is dropped (headers come from the wire), a missing deadline means
    :data:`DEFAULT_TIMEOUT` from now, a missing request id gets a new one."""
    h = headers or {}
    user = h.get("caller") or None
    role = h.get("role")
    role = role if type(role) is str and role in ROLES else None
    deadline = h.get("deadline")
    assertion = h.get("identity")
    return Envelope(
        command=command,
        caller=Caller(user, cast(Role, role)) if (user or role) else ANONYMOUS,
        deadline=float(deadline) if deadline else time.time() + DEFAULT_TIMEOUT,
        request_id=request_id or new_request_id(),
        assertion=assertion if type(assertion) is str else "",
    )
