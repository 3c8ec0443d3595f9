"""Jobs service commands and replies (jobs, search, proposals).

The caller (client or freelancer id, role) travels in the envelope, never in these structs: a
service takes identity from ``ctx.caller`` only. Body structs (``JobDraft``, ``ProposalDraft``,
``ProposalChanges``) validate formats (lengths, enums, money) so nothing malformed reaches the
service; the commands extend them with the ids from the path.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Literal

import msgspec

from ..cache import cache_key
from ._base import Message

__all__ = [
    "Experience", "JobDuration", "ProposalStatus", "check_money", "MAX_MONEY",
    "JobDraft", "CreateJob", "Job", "GetJob", "GetMyJobs", "BrowseJobs", "SearchJobs",
    "JobListing", "JobPage",
    "Attachment", "ProposalMilestone", "ProposalDraft", "ProposalChanges", "CreateProposal",
    "Proposal", "GetProposal", "UpdateProposal", "GetJobProposals", "GetMyProposals",
    "AcceptProposal", "JobRef", "ProposalRef", "Acceptance", "job_cache_key", "proposals_cache_key",
]

Experience = Literal["ENTRY_LEVEL", "INTERMEDIATE", "EXPERT"]
JobDuration = Literal["LESS_THAN_A_MONTH", "ONE_TO_THREE_MONTHS", "THREE_TO_SIX_MONTHS", "MORE_THAN_SIX_MONTHS"]
ProposalStatus = Literal["PENDING", "ACCEPTED", "REJECTED"]

MAX_MONEY = Decimal(1_000_000_000)

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]
Short = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
OptShort = Annotated[str, msgspec.Meta(max_length=300)]
Skill = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
PageLimit = Annotated[int, msgspec.Meta(ge=1, le=100)]


def check_money(value: Decimal, name: str = "amount") -> None:
    """API money: finite, > 0, at most 2 decimal places, at most 1e9 (ValueError → 400)."""
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{name} must be a number greater than 0")
    if value > MAX_MONEY:
        raise ValueError(f"{name} must be at most 1000000000")
    if value != value.quantize(Decimal("0.01")):
        raise ValueError(f"{name} must have at most 2 decimal places")


def _blank(name: str, value: str | None) -> None:
    if value is not None and not value.strip():
        raise ValueError(f"{name} must not be blank")


# --- jobs ----------------------------------------------------------------------------------------

class JobDraft(Message):
    """Body of ``POST /jobs``."""
    title: Short
    description: Text
    location: OptShort | None = None
    budget: Decimal | None = None
    skills: Annotated[list[Skill], msgspec.Meta(max_length=50)] = []
    experience: Experience | None = None

    def __post_init__(self) -> None:
        _blank("title", self.title)
        _blank("description", self.description)
        if self.budget is not None:
            check_money(self.budget, "budget")


class CreateJob(JobDraft):
    """Reply: ``Job`` (201)."""


class Job(Message, omit_defaults=False):
    id: str
    title: str
    description: str
    location: str | None
    budget: Decimal | None
    skills: list[str]
    experience: Experience | None
    client_id: str
    active: bool
    created_at: str
    updated_at: str


class GetJob(Message):
    """Reply: ``Job``."""
    job_id: str


class GetMyJobs(Message):
    """The caller's jobs, newest first. Reply: ``list[Job]``."""


class BrowseJobs(Message):
    """Active jobs, newest first. Reply: ``JobPage``."""
    page_limit: PageLimit = 20
    paging_state: str | None = None


class SearchJobs(Message):
    """Every word of ``query`` as a whole word (any case) in title, description or skills.
    Reply: ``JobPage``."""
    query: Annotated[str, msgspec.Meta(max_length=1000)]
    page_limit: PageLimit = 20
    paging_state: str | None = None

    def __post_init__(self) -> None:
        if not self.query.strip():
            raise ValueError("query must not be blank")


class JobListing(Message, omit_defaults=False):
    id: str
    title: str
    description: str
    experience: Experience | None
    skills: list[str]
    budget: Decimal | None
    created_at: str


class JobPage(Message, omit_defaults=False):
    jobs: list[JobListing]
    paging_state: str | None


# --- proposals -----------------------------------------------------------------------------------

class Attachment(Message):
    name: Short
    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class ProposalMilestone(Message):
    description: Text
    amount: Decimal
    due_date: dt.date

    def __post_init__(self) -> None:
        _blank("description", self.description)
        check_money(self.amount)


Milestones = Annotated[list[ProposalMilestone], msgspec.Meta(min_length=1, max_length=50)]
Attachments = Annotated[list[Attachment], msgspec.Meta(max_length=20)]


class ProposalDraft(Message):
    """Body of ``POST /jobs/{id}/proposals``."""
    cover_letter: Text
    job_duration: JobDuration
    milestones: Milestones
    attachments: Attachments = []

    def __post_init__(self) -> None:
        _blank("coverLetter", self.cover_letter)


class ProposalChanges(Message):
    """Body of ``PUT /proposals/{id}``: only the given fields change."""
    cover_letter: Text | None = None
    job_duration: JobDuration | None = None
    milestones: Milestones | None = None
    attachments: Attachments | None = None

    def __post_init__(self) -> None:
        _blank("coverLetter", self.cover_letter)


class CreateProposal(ProposalDraft, kw_only=True):
    """Reply: ``Proposal`` (201)."""
    job_id: str


class Proposal(Message, omit_defaults=False):
    id: str
    job_id: str
    freelancer_id: str
    cover_letter: str
    job_duration: JobDuration
    status: ProposalStatus
    milestones: list[ProposalMilestone]
    attachments: list[Attachment]
    created_at: str
    updated_at: str


class GetProposal(Message):
    """Reply: ``Proposal``."""
    proposal_id: str


class UpdateProposal(ProposalChanges, kw_only=True):
    """Reply: ``Proposal``."""
    proposal_id: str


class GetJobProposals(Message):
    """Reply: ``list[Proposal]``."""
    job_id: str


class GetMyProposals(Message):
    """Reply: ``list[Proposal]``."""


class AcceptProposal(Message):
    """Reply: ``Acceptance``."""
    job_id: str
    proposal_id: str


class JobRef(Message):
    id: str
    active: bool


class ProposalRef(Message):
    id: str
    status: ProposalStatus


class Acceptance(Message):
    contract_id: str
    job: JobRef
    proposal: ProposalRef


# --- cache keys (the gateway serves these entries; the jobs service fills and invalidates) -------

def job_cache_key(job_id: str) -> str:
    """The cached ``GetJob`` reply (same for every authenticated caller)."""
    return cache_key("jobs", "job", job_id)


def proposals_cache_key(job_id: str) -> str:
    """The cached list of a job's proposals. Only the service reads it: who may see the list
    depends on the caller, so the gateway cannot serve it."""
    return cache_key("jobs", "proposals", job_id)
