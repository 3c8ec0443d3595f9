"""HTTP routes of the contracts service (``/api/v1/contracts``; API.md "Contracts"): a table of
:class:`~workup.gateway.routing.Route`. The parties-only rule is the service's (it knows the
contract); ``print`` is served as ``text/plain`` by its hook :func:`as_plain_text`."""

from __future__ import annotations

import msgspec
from quart import Blueprint, Response

from ...messages import contracts as m
from ..routing import ANY, Body, NoBody, PlainText, Route, RouteCall, mount, respond

__all__ = ["blueprint", "ROUTES", "as_plain_text"]

blueprint = Blueprint("contracts", __name__)

C = "/api/v1/contracts"
CONTRACT, MILESTONE = {"contract_id": "contract_id"}, {"milestone_id": "milestone_id"}


async def as_plain_text(served: RouteCall) -> Response:
    """The reply's ``text`` field as ``text/plain`` (problems stay problem+json)."""
    reply = await served.call(await served.command())
    if reply.status >= 400:
        return respond(reply)
    text = msgspec.json.decode(reply.body, type=m.ContractText).text
    return Response(text, status=200, content_type="text/plain; charset=utf-8")


ROUTES: list[Route] = [
    Route("GET", f"{C}/me", ANY, m.GetMyContracts, reply=list[m.Contract]),
    Route("GET", f"{C}/<contract_id>", ANY, m.GetContract, ids=CONTRACT, reply=m.Contract),
    Route("GET", f"{C}/<contract_id>/milestones", ANY, m.GetContractMilestones, ids=CONTRACT, reply=list[m.Milestone]),
    Route("GET", f"{C}/milestones/<milestone_id>", ANY, m.GetMilestone, ids=MILESTONE, reply=m.Milestone),
    Route("POST", f"{C}/milestones/<milestone_id>/progress", ("FREELANCER",), m.ProgressMilestone,
          Body(NoBody, allow_empty=True), ids=MILESTONE, reply=m.Milestone),
    Route("POST", f"{C}/milestones/<milestone_id>/evaluate", ("CLIENT",), m.EvaluateMilestone, Body(m.Evaluation),
          ids=MILESTONE, reply=m.EvaluatedMilestone),
    Route("POST", f"{C}/<contract_id>/terminations/request", ("CLIENT", "FREELANCER"), m.RequestTermination,
          Body(m.TerminationReason), status=201, ids=CONTRACT, reply=m.TerminationRequest),
    Route("GET", f"{C}/<contract_id>/terminations", ANY, m.GetPendingTerminations, ids=CONTRACT,
          reply=list[m.TerminationRequest]),
    Route("POST", f"{C}/terminations/<termination_id>/handle", ("ADMIN",), m.HandleTermination,
          Body(m.TerminationDecision), ids={"termination_id": "termination_id"}, reply=m.TerminationRequest),
    Route("GET", f"{C}/<contract_id>/print", ANY, m.PrintContract, ids=CONTRACT, reply=PlainText,
          hook=as_plain_text),
]

mount(blueprint, "contracts", ROUTES)
