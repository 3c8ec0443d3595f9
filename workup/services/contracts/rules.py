"""The contract state machines and access rules. Pure decisions; handlers raise the problems.

Milestone: OPEN → IN_PROGRESS → IN_REVIEW (freelancer), IN_REVIEW → ACCEPTED | IN_PROGRESS
(client), ACCEPTED → PAID (payments). Contract: ACTIVE → COMPLETED (every milestone PAID) or
TERMINATED (an admin accepts a termination request). Termination request: PENDING → ACCEPTED |
REJECTED (admin).
"""

from __future__ import annotations

from typing import Iterable

from ...transport.envelope import Caller

__all__ = ["progressed", "evaluated", "payable", "completes", "is_party", "can_read", "handled"]

_PROGRESS = {"OPEN": "IN_PROGRESS", "IN_PROGRESS": "IN_REVIEW"}


def progressed(status: str) -> str | None:
    """The next state of a freelancer's progress, or None when it cannot progress."""
    return _PROGRESS.get(status)


def evaluated(status: str, target: str) -> str | None:
    """The state after a client's evaluation, or None (only from IN_REVIEW, only to ACCEPTED or
    back to IN_PROGRESS)."""
    return target if status == "IN_REVIEW" and target in ("ACCEPTED", "IN_PROGRESS") else None


def payable(status: str) -> bool:
    """May the milestone be marked PAID (ACCEPTED), or is it already (PAID: idempotent)?"""
    return status in ("ACCEPTED", "PAID")


def completes(statuses: Iterable[str]) -> bool:
    """Every milestone PAID (and there is at least one)."""
    seen = list(statuses)
    return bool(seen) and all(s == "PAID" for s in seen)


def handled(status: str, chosen: str) -> str | None:
    """A termination request's next state, or None when it is not PENDING any more."""
    return chosen if status == "PENDING" and chosen in ("ACCEPTED", "REJECTED") else None


def is_party(caller: Caller, client_id: str, freelancer_id: str) -> bool:
    return caller.user_id is not None and (
        (caller.role == "CLIENT" and caller.user_id == client_id)
        or (caller.role == "FREELANCER" and caller.user_id == freelancer_id))


def can_read(caller: Caller, client_id: str, freelancer_id: str) -> bool:
    return caller.role == "ADMIN" or is_party(caller, client_id, freelancer_id)
