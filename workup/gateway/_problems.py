"""Problem documents as HTTP responses (RFC 9457), and msgspec errors as field errors."""

from __future__ import annotations

import re

import msgspec
from quart import Response
from werkzeug.exceptions import HTTPException

from ..transport.envelope import encode_json
from ..problems import FieldError, Problem, ProblemError

__all__ = ["PROBLEM_JSON", "JSON", "RETRY_AFTER", "DEFAULT_TYPE", "Answer", "problem_answer", "problem_response", "problem_bytes", "normalize_problem", "http_problem",
           "field_errors", "validation_problem"]

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
RETRY_AFTER = "1"  # seconds; a frozen service or a missing responder is usually back soon
DEFAULT_TYPE = "text/html; charset=utf-8"   # quart's, for an answer that names none (a 204)

_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"missing required field `(?P<name>[^`]+)`")
# a struct's own check (``__post_init__``) has no path from msgspec; by convention its message
# starts with the field it is about: "amount must have at most 2 decimal places"
_SUBJECT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*) must\b")


def problem_bytes(problem: Problem) -> bytes:
    """RFC 9457 JSON with every member written out (``Problem`` itself omits defaults)."""
    doc: dict[str, object] = {"type": problem.type, "title": problem.title,
                              "status": problem.status, "detail": problem.detail}
    if problem.errors is not None:
        doc["errors"] = problem.errors
    return encode_json(doc)


def normalize_problem(status: int, body: bytes) -> bytes:
    """A service's problem reply with every member written out (the body is kept as it is when
    it is not a problem document)."""
    try:
        problem = _problem_decoder.decode(body)
    except msgspec.DecodeError:
        return body
    return problem_bytes(problem)


_problem_decoder = msgspec.json.Decoder(Problem)


class Answer(msgspec.Struct):
    """An answer of the gateway, made the same way whichever request path serves it (quart's or
    the lean one of ``_lean.py``). ``content_type`` None is quart's default type (an empty
    answer); ``headers`` come after Content-Type and Content-Length."""
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] | None = None

    def response(self) -> Response:
        """The same answer as a quart Response (for the quart path)."""
        response = Response(self.body, status=self.status, content_type=self.content_type)
        if self.headers:
            response.headers.update(self.headers)
        return response


def problem_answer(problem: Problem, headers: dict[str, str] | None = None) -> Answer:
    """problem+json; ``Retry-After`` on 503."""
    extra = {"Retry-After": RETRY_AFTER} if problem.status == 503 else None
    if headers:
        extra = {**extra, **headers} if extra else dict(headers)
    return Answer(problem.status, problem_bytes(problem), PROBLEM_JSON, extra)


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    return problem_answer(problem, headers).response()


def http_problem(exc: HTTPException) -> Response:
    """A werkzeug/quart HTTP error (404, 405, 413, ...) as problem+json."""
    status = exc.code or 500
    detail = {
        404: "no such route",
        405: "method not allowed on this route",
        413: "request body too large",
    }.get(status, "")
    headers = {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # type: ignore[attr-defined]
    return problem_response(ProblemError(status, detail).problem, headers)


def _path_to_field(path: str) -> str:
    # "$.milestones[0].amount" -> "milestones[0].amount"
    return path[1:] if path.startswith(".") else path


def field_errors(exc: msgspec.ValidationError) -> list[FieldError]:
    """msgspec's one-line message -> ``[{field, message}]`` with the wire (camelCase) names."""
    text = str(exc)
    m = _PATH.search(text)
    path = _path_to_field(m.group("path")) if m else ""
    message = text[: m.start()] if m else text
    missing = _MISSING.search(message)
    if missing:
        path = f"{path}.{missing.group('name')}" if path else missing.group("name")
    subject = None if missing else _SUBJECT.match(message)
    if subject:
        name = subject.group("name")
        # a nested struct's own check: msgspec's path ends at the struct ("milestones[0]")
        if not path:
            path = name
        elif not re.search(rf"(^|\.){re.escape(name)}$", path):
            path = f"{path}.{name}"
    return [FieldError(field=path or "$", message=message)]


def validation_problem(exc: msgspec.ValidationError, where: str = "body") -> ProblemError:
    return ProblemError(400, f"invalid {where}", errors=field_errors(exc))
