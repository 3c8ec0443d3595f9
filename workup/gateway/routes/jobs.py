"""HTTP routes of the jobs service (``/api/v1/jobs``, ``/api/v1/proposals``; API.md "Jobs and
proposals").

Each handler checks the role first, then the path ids and the body or query (400 with field
errors), then forwards the command; identity travels in the envelope, never in the body. Job
reads are served from the cache when the jobs service has filled it.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from quart import Blueprint, Response

from ...messages import jobs as m
from ...problems import FieldError, ProblemError
from ..kit import cached_forward, forward, json_body, query_params, require_auth, require_role

__all__ = ["blueprint", "path_id", "ROUTES"]

blueprint = Blueprint("jobs", __name__)

J, P = "/api/v1/jobs", "/api/v1/proposals"
_ID = re.compile(r"[0-9a-fA-F]{32}")

# (method, path, roles (None: public, (): any), command, success status) — for the OpenAPI document
ROUTES: list[tuple[str, str, tuple[str, ...] | None, type, int]] = [
    ("POST", J, ("CLIENT",), m.CreateJob, 201),
    ("GET", J, None, m.BrowseJobs, 200),
    ("GET", f"{J}/search", None, m.SearchJobs, 200),
    ("GET", f"{J}/me", ("CLIENT",), m.GetMyJobs, 200),
    ("GET", f"{J}/me/proposals", ("FREELANCER",), m.GetMyProposals, 200),
    ("GET", f"{J}/{{id}}", (), m.GetJob, 200),
    ("POST", f"{J}/{{id}}/proposals", ("FREELANCER",), m.CreateProposal, 201),
    ("GET", f"{J}/{{id}}/proposals", (), m.GetJobProposals, 200),
    ("POST", f"{J}/{{jobId}}/proposals/{{proposalId}}/accept", ("CLIENT",), m.AcceptProposal, 200),
    ("GET", f"{P}/{{id}}", (), m.GetProposal, 200),
    ("PUT", f"{P}/{{id}}", ("FREELANCER",), m.UpdateProposal, 200),
]


def path_id(value: str, field: str) -> str:
    """A path id (32 hex characters) or 400."""
    if not _ID.fullmatch(value):
        raise ProblemError(400, f"{field} is not a valid id",
                           errors=[FieldError(field=field, message="must be 32 hexadecimal characters")])
    return value.lower()


def _with(command: type, draft: Any, **ids: str) -> Any:
    """The command struct: the validated body plus the path ids."""
    return command(**msgspec.structs.asdict(draft), **ids)


@blueprint.post(J)
async def create_job() -> Response:
    require_role("CLIENT")
    return await forward("jobs.CreateJob", await json_body(m.CreateJob))


@blueprint.get(J)
async def browse_jobs() -> Response:
    return await forward("jobs.BrowseJobs", query_params(m.BrowseJobs))


@blueprint.get(f"{J}/search")
async def search_jobs() -> Response:
    return await forward("jobs.SearchJobs", query_params(m.SearchJobs))


@blueprint.get(f"{J}/me")
async def my_jobs() -> Response:
    require_role("CLIENT")
    return await forward("jobs.GetMyJobs", m.GetMyJobs())


@blueprint.get(f"{J}/me/proposals")
async def my_proposals() -> Response:
    require_role("FREELANCER")
    return await forward("jobs.GetMyProposals", m.GetMyProposals())


@blueprint.get(f"{J}/<job_id>")
async def get_job(job_id: str) -> Response:
    require_auth()
    job_id = path_id(job_id, "id")
    return await cached_forward(m.job_cache_key(job_id), "jobs.GetJob", m.GetJob(job_id=job_id))


@blueprint.post(f"{J}/<job_id>/proposals")
async def create_proposal(job_id: str) -> Response:
    require_role("FREELANCER")
    job_id = path_id(job_id, "id")
    draft = await json_body(m.ProposalDraft)
    return await forward("jobs.CreateProposal", _with(m.CreateProposal, draft, job_id=job_id))


@blueprint.get(f"{J}/<job_id>/proposals")
async def job_proposals(job_id: str) -> Response:
    require_auth()
    return await forward("jobs.GetJobProposals", m.GetJobProposals(job_id=path_id(job_id, "id")))


@blueprint.post(f"{J}/<job_id>/proposals/<proposal_id>/accept")
async def accept_proposal(job_id: str, proposal_id: str) -> Response:
    require_role("CLIENT")
    return await forward("jobs.AcceptProposal", m.AcceptProposal(
        job_id=path_id(job_id, "jobId"), proposal_id=path_id(proposal_id, "proposalId")))


@blueprint.get(f"{P}/<proposal_id>")
async def get_proposal(proposal_id: str) -> Response:
    require_auth()
    return await forward("jobs.GetProposal", m.GetProposal(proposal_id=path_id(proposal_id, "id")))


@blueprint.put(f"{P}/<proposal_id>")
async def update_proposal(proposal_id: str) -> Response:
    require_role("FREELANCER")
    proposal_id = path_id(proposal_id, "id")
    changes = await json_body(m.ProposalChanges)
    return await forward("jobs.UpdateProposal", _with(m.UpdateProposal, changes, proposal_id=proposal_id))
