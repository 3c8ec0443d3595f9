"""HTTP routes of the jobs service (``/api/v1/jobs``, ``/api/v1/proposals``; docs/api.md "Jobs and
proposals"): a table of :class:`~workup.gateway.routing.Route`. Job reads are served from the read
cache when the jobs service has filled it."""

from __future__ import annotations

from quart import Blueprint

from ...messages import jobs as m
from ..routing import ANY, Body, CacheKey, Query, Route, mount

__all__ = ["blueprint", "ROUTES"]

blueprint = Blueprint("jobs", __name__)

J, P = "/api/v1/jobs", "/api/v1/proposals"
CLIENT, FREELANCER = ("CLIENT",), ("FREELANCER",)
JOB, PROPOSAL = {"job_id": "job_id"}, {"proposal_id": "proposal_id"}

ROUTES: list[Route] = [
    Route("POST", J, CLIENT, m.CreateJob, Body(m.JobDraft), status=201, reply=m.Job,
          summary="Post a job",
          description="`title` and `description` are required; `location`, `budget`, `skills` and "
                      "`experience` are optional. The job is active and owned by the caller."),
    Route("GET", J, None, m.BrowseJobs, Query(), reply=m.JobPage,
          summary="Browse the active jobs",
          description="Active jobs, newest first, a page at a time: `pageLimit` 1 to 100 (default 20); "
                      "pass the answer's `pagingState` back for the next page (null on the last one)."),
    Route("GET", f"{J}/search", None, m.SearchJobs, Query(), reply=m.JobPage,
          summary="Search the active jobs",
          description="Every word of `query` must occur as a whole word (any case) in the title, the "
                      "description or the skills. Newest first, paged like browsing; a missing or blank "
                      "`query` is 400."),
    Route("GET", f"{J}/me", CLIENT, m.GetMyJobs, reply=list[m.Job],
          summary="The caller's jobs", description="Every job the caller posted, active or not, newest first."),
    Route("GET", f"{J}/me/proposals", FREELANCER, m.GetMyProposals, reply=list[m.Proposal],
          summary="The caller's proposals", description="Every proposal the caller made, on any job."),
    Route("GET", f"{J}/<job_id>", ANY, m.GetJob, ids=JOB, cache=CacheKey(m.job_cache_key, ("job_id",)), reply=m.Job,
          summary="A job", description="Any signed-in account may read any job."),
    Route("POST", f"{J}/<job_id>/proposals", FREELANCER, m.CreateProposal, Body(m.ProposalDraft), status=201,
          ids=JOB, reply=m.Proposal,
          summary="Propose for a job",
          description="`coverLetter`, `jobDuration` and 1 to 50 `milestones` (each `description`, `amount`, "
                      "`dueDate`) are required, `attachments` optional. The proposal is PENDING. 404 when "
                      "there is no such job; 409 when it is inactive or the caller already has a pending "
                      "proposal on it."),
    Route("GET", f"{J}/<job_id>/proposals", ANY, m.GetJobProposals, ids=JOB, reply=list[m.Proposal],
          summary="Proposals on a job",
          description="The job's owner sees every proposal, a freelancer only their own; another client "
                      "gets 403."),
    Route("POST", f"{J}/<job_id>/proposals/<proposal_id>/accept", CLIENT, m.AcceptProposal, ids={**JOB, **PROPOSAL},
          reply=m.Acceptance,
          summary="Accept a proposal",
          description="For the job's owner. The proposal becomes ACCEPTED, every other pending one on the "
                      "job REJECTED, the job inactive, and a contract is made with the proposal's "
                      "milestones. Accepting the same proposal again gives the same answer (the same "
                      "`contractId`); any other proposal is 409 once the job is inactive."),
    Route("GET", f"{P}/<proposal_id>", ANY, m.GetProposal, ids=PROPOSAL, reply=m.Proposal,
          summary="A proposal", description="For its freelancer, the job's owner or an admin."),
    Route("PUT", f"{P}/<proposal_id>", FREELANCER, m.UpdateProposal, Body(m.ProposalChanges), ids=PROPOSAL,
          reply=m.Proposal,
          summary="Change a proposal",
          description="For its author, while it is PENDING (else 409): only the fields given change "
                      "(`coverLetter`, `jobDuration`, `milestones`, `attachments`)."),
]

mount(blueprint, "jobs", ROUTES)
