"""HTTP routes of the jobs service (``/api/v1/jobs``, ``/api/v1/proposals``; API.md "Jobs and
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
    Route("POST", J, CLIENT, m.CreateJob, Body(m.JobDraft), status=201, reply=m.Job),
    Route("GET", J, None, m.BrowseJobs, Query(), reply=m.JobPage),
    Route("GET", f"{J}/search", None, m.SearchJobs, Query(), reply=m.JobPage),
    Route("GET", f"{J}/me", CLIENT, m.GetMyJobs, reply=list[m.Job]),
    Route("GET", f"{J}/me/proposals", FREELANCER, m.GetMyProposals, reply=list[m.Proposal]),
    Route("GET", f"{J}/<job_id>", ANY, m.GetJob, ids=JOB, cache=CacheKey(m.job_cache_key, ("job_id",)), reply=m.Job),
    Route("POST", f"{J}/<job_id>/proposals", FREELANCER, m.CreateProposal, Body(m.ProposalDraft), status=201,
          ids=JOB, reply=m.Proposal),
    Route("GET", f"{J}/<job_id>/proposals", ANY, m.GetJobProposals, ids=JOB, reply=list[m.Proposal]),
    Route("POST", f"{J}/<job_id>/proposals/<proposal_id>/accept", CLIENT, m.AcceptProposal, ids={**JOB, **PROPOSAL},
          reply=m.Acceptance),
    Route("GET", f"{P}/<proposal_id>", ANY, m.GetProposal, ids=PROPOSAL, reply=m.Proposal),
    Route("PUT", f"{P}/<proposal_id>", FREELANCER, m.UpdateProposal, Body(m.ProposalChanges), ids=PROPOSAL,
          reply=m.Proposal),
]

mount(blueprint, "jobs", ROUTES)
