"""Contracts service commands. Cross-service ones (called with the SERVICE role) come first;
the contracts engineer adds the HTTP-facing ones below."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from ..cache import cache_key
from ._base import Message


# --- called by other services (idempotent) -------------------------------------------------------

class MilestoneSpec(Message):
    description: str
    amount: Decimal
    due_date: dt.date


class CreateContract(Message):
    """jobs → contracts when a proposal is accepted; idempotent on proposal_id (a retry returns
    the same contract). Reply: ``ContractRef``."""
    proposal_id: str
    job_id: str
    job_title: str
    client_id: str
    freelancer_id: str
    milestones: list[MilestoneSpec]
    # when the proposal was accepted (unix ms): the contract's creation time, the same on every
    # attempt, so a retry writes the very same index rows; 0 = not said, the time of the attempt
    accepted_ms: int = 0


class ContractRef(Message):
    id: str


class MarkMilestonePaid(Message):
    """payments → contracts after a payment request is paid; idempotent. The contract becomes
    COMPLETED when every milestone is PAID. Reply: ``None``."""
    milestone_id: str
    payment_request_id: str


class HasActiveContract(Message):
    """users → contracts before closing an account. Reply: ``ActiveContractAnswer``."""
    user_id: str


class ActiveContractAnswer(Message):
    active: bool


# --- HTTP-facing (the caller travels in the envelope) ---------------------------------------------

ContractStatus = Literal["ACTIVE", "TERMINATED", "COMPLETED"]
MilestoneStatus = Literal["OPEN", "IN_PROGRESS", "IN_REVIEW", "ACCEPTED", "PAID"]
TerminationStatus = Literal["PENDING", "ACCEPTED", "REJECTED"]


class Contract(Message, omit_defaults=False):
    id: str
    job_id: str
    job_title: str
    proposal_id: str
    client_id: str
    freelancer_id: str
    status: ContractStatus
    milestone_ids: list[str]
    created_at: str


class Milestone(Message, omit_defaults=False):
    id: str
    contract_id: str
    description: str
    amount: Decimal
    due_date: dt.date
    status: MilestoneStatus


class EvaluatedMilestone(Milestone, kw_only=True):
    """Reply of an evaluation; ``paymentRequestId`` is set once the milestone is ACCEPTED and
    payments has opened the request (null if payments has not answered yet: a relay retries)."""
    payment_request_id: str | None = None


class TerminationRequest(Message, omit_defaults=False):
    id: str
    contract_id: str
    requester_id: str
    reason: str
    status: TerminationStatus


class ContractText(Message):
    text: str


class GetContract(Message):
    """Reply: ``Contract``."""
    contract_id: str


class GetMyContracts(Message):
    """Contracts where the caller is a party, newest first. Reply: ``list[Contract]``."""


class GetContractMilestones(Message):
    """Reply: ``list[Milestone]`` in proposal order."""
    contract_id: str


class GetMilestone(Message):
    """Reply: ``Milestone``."""
    milestone_id: str


class ProgressMilestone(Message):
    """Freelancer: OPEN → IN_PROGRESS → IN_REVIEW. Reply: ``Milestone``."""
    milestone_id: str


class Evaluation(Message):
    """Body of ``POST /contracts/milestones/{id}/evaluate``."""
    evaluated_state: Literal["ACCEPTED", "IN_PROGRESS"]


class EvaluateMilestone(Evaluation, kw_only=True):
    """Client, from IN_REVIEW only. Reply: ``EvaluatedMilestone``."""
    milestone_id: str


class TerminationReason(Message):
    """Body of ``POST /contracts/{id}/terminations/request``."""
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=5000)]

    def __post_init__(self) -> None:
        if not self.reason.strip():
            raise ValueError("reason must not be blank")


class RequestTermination(TerminationReason, kw_only=True):
    """Reply: ``TerminationRequest`` (201)."""
    contract_id: str


class GetPendingTerminations(Message):
    """Reply: ``list[TerminationRequest]`` (PENDING only)."""
    contract_id: str


class TerminationDecision(Message):
    """Body of ``POST /contracts/terminations/{id}/handle``."""
    chosen_status: Literal["ACCEPTED", "REJECTED"]


class HandleTermination(TerminationDecision, kw_only=True):
    """Admin only. Reply: ``TerminationRequest``."""
    termination_id: str


class PrintContract(Message):
    """Reply: ``ContractText`` (the gateway serves it as text/plain)."""
    contract_id: str


# --- read cache keys (only the service reads them: the parties-only rule is applied after the read)

def contract_cache_key(contract_id: str) -> str:
    """The cached public ``Contract`` body."""
    return cache_key("contracts", "contract", contract_id)


def milestone_cache_key(milestone_id: str) -> str:
    """The cached public ``Milestone`` body."""
    return cache_key("contracts", "milestone", milestone_id)
