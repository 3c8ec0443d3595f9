"""HTTP routes of the contracts service (``/api/v1/contracts``; API.md "Contracts"), declared as
data like the jobs routes. The parties-only rule is the service's (it knows the contract);
``print`` is served as ``text/plain``."""

from __future__ import annotations

from quart import Blueprint

from ...messages import contracts as m
from .jobs import ANY, NoBody, Route, register

__all__ = ["blueprint", "ROUTES"]

blueprint = Blueprint("contracts", __name__)

C = "/api/v1/contracts"
CONTRACT, MILESTONE = {"contract_id": "id"}, {"milestone_id": "id"}

ROUTES: list[Route] = [
    Route("GET", f"{C}/me", ANY, m.GetMyContracts, reply=list[m.Contract]),
    Route("GET", f"{C}/<contract_id>", ANY, m.GetContract, ids=CONTRACT, reply=m.Contract),
    Route("GET", f"{C}/<contract_id>/milestones", ANY, m.GetContractMilestones, ids=CONTRACT, reply=list[m.Milestone]),
    Route("GET", f"{C}/milestones/<milestone_id>", ANY, m.GetMilestone, ids=MILESTONE, reply=m.Milestone),
    Route("POST", f"{C}/milestones/<milestone_id>/progress", ("FREELANCER",), m.ProgressMilestone, body=NoBody,
          ids=MILESTONE, reply=m.Milestone),
    Route("POST", f"{C}/milestones/<milestone_id>/evaluate", ("CLIENT",), m.EvaluateMilestone, body=m.Evaluation,
          ids=MILESTONE, reply=m.EvaluatedMilestone),
    Route("POST", f"{C}/<contract_id>/terminations/request", ("CLIENT", "FREELANCER"), m.RequestTermination,
          body=m.TerminationReason, status=201, ids=CONTRACT, reply=m.TerminationRequest),
    Route("GET", f"{C}/<contract_id>/terminations", ANY, m.GetPendingTerminations, ids=CONTRACT,
          reply=list[m.TerminationRequest]),
    Route("POST", f"{C}/terminations/<termination_id>/handle", ("ADMIN",), m.HandleTermination,
          body=m.TerminationDecision, ids={"termination_id": "id"}, reply=m.TerminationRequest),
    Route("GET", f"{C}/<contract_id>/print", ANY, m.PrintContract, ids=CONTRACT, text=True, reply=str),
]

register(blueprint, "contracts", ROUTES)
