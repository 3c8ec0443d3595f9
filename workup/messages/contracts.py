"""Contracts service commands. Cross-service ones (called with the SERVICE role) come first;
the contracts engineer adds the HTTP-facing ones below."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

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
