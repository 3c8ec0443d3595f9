"""Who may do what with jobs and proposals. Pure decisions; handlers raise the problems."""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

from ...transport.envelope import Caller
from ...problems import ProblemError

__all__ = ["require_role", "can_read_proposal", "visible_proposals"]

T = TypeVar("T")


def require_role(caller: Caller, *roles: str) -> str:
    """The caller's user id, or 403 (the gateway checks first; this keeps the service safe on
    its own)."""
    if caller.user_id is None or caller.role not in roles:
        raise ProblemError(403, f"only {' or '.join(roles)} accounts may do this")
    return caller.user_id


def can_read_proposal(caller: Caller, freelancer_id: str, job_owner: str) -> bool:
    """The proposal's author, the job's owner, or an admin."""
    return caller.role == "ADMIN" or caller.user_id in (freelancer_id, job_owner)


def visible_proposals(caller: Caller, job_owner: str, proposals: Sequence[T],
                      author: Callable[[T], str]) -> list[T] | None:
    """What ``GET /jobs/{id}/proposals`` shows: all to the owner (and admins), a freelancer's
    own to a freelancer, nothing to another client (``None`` = 403)."""
    if caller.role == "ADMIN" or (caller.role == "CLIENT" and caller.user_id == job_owner):
        return list(proposals)
    if caller.role == "FREELANCER":
        return [p for p in proposals if author(p) == caller.user_id]
    return None
