"""RFC 9457 problem documents, shared by the gateway (HTTP) and the services (RPC replies).

A handler raises :class:`ProblemError` (or one of the helpers below); the runtime turns it into a
reply with that status, and the gateway into ``application/problem+json``.
"""

from __future__ import annotations

from http import HTTPStatus

import msgspec

__all__ = [
    "FieldError", "Problem", "ProblemError",
    "bad_request", "unauthorized", "forbidden", "not_found", "conflict", "unavailable",
]


class FieldError(msgspec.Struct):
    field: str
    message: str


class Problem(msgspec.Struct, omit_defaults=True):
    status: int
    title: str
    detail: str = ""
    type: str = "about:blank"
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """An expected failure that becomes a problem reply; never carries a stack trace out."""

    def __init__(self, status: int, detail: str = "", *, title: str | None = None,
                 errors: list[FieldError] | None = None) -> None:
        self.problem = Problem(
            status=status,
            title=title or HTTPStatus(status).phrase,
            detail=detail,
            errors=errors,
        )
        super().__init__(f"{status} {self.problem.title}: {detail}")

    @property
    def status(self) -> int:
        return self.problem.status


def bad_request(detail: str, errors: list[FieldError] | None = None) -> ProblemError:
    return ProblemError(400, detail, errors=errors)


def unauthorized(detail: str = "authentication required") -> ProblemError:
    return ProblemError(401, detail)


def forbidden(detail: str = "not allowed") -> ProblemError:
    return ProblemError(403, detail)


def not_found(what: str) -> ProblemError:
    return ProblemError(404, f"{what} not found")


def conflict(detail: str) -> ProblemError:
    return ProblemError(409, detail)


def unavailable(detail: str) -> ProblemError:
    return ProblemError(503, detail)
