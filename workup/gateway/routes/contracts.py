"""HTTP routes of the contracts service (``/api/v1/contracts``; docs/api.md "Contracts"): a table of
:class:`~workup.gateway.routing.Route`. The parties-only rule is the service's (it knows the
contract); ``print`` is served as ``text/plain`` by its hook :func:`as_plain_text`."""

from __future__ import annotations

import msgspec
from quart import Blueprint

from ...messages import contracts as m
from ..routing import ANY, Answer, Body, NoBody, PlainText, Route, RouteCall, mount, respond

__all__ = ["blueprint", "ROUTES", "as_plain_text"]

blueprint = Blueprint("contracts", __name__)

C = "/api/v1/contracts"
CONTRACT, MILESTONE = {"contract_id": "contract_id"}, {"milestone_id": "milestone_id"}
PARTIES = "For the contract's client, its freelancer or an admin (else 403)."


async def as_plain_text(served: RouteCall) -> Answer:
    """The reply's ``text`` field as ``text/plain`` (problems stay problem+json)."""
    reply = await served.call(await served.command())
    if reply.status >= 400:
        return respond(reply)
    text = msgspec.json.decode(reply.body, type=m.ContractText).text
    return Answer(200, text.encode(), "text/plain; charset=utf-8")


ROUTES: list[Route] = [
    Route("GET", f"{C}/me", ANY, m.GetMyContracts, reply=list[m.Contract],
          summary="The caller's contracts", description="Contracts the caller is a party to, newest first."),
    Route("GET", f"{C}/<contract_id>", ANY, m.GetContract, ids=CONTRACT, reply=m.Contract,
          summary="A contract", description=PARTIES),
    Route("GET", f"{C}/<contract_id>/milestones", ANY, m.GetContractMilestones, ids=CONTRACT, reply=list[m.Milestone],
          summary="A contract's milestones", description=f"In the proposal's order. {PARTIES}"),
    Route("GET", f"{C}/milestones/<milestone_id>", ANY, m.GetMilestone, ids=MILESTONE, reply=m.Milestone,
          summary="A milestone", description=PARTIES),
    Route("POST", f"{C}/milestones/<milestone_id>/progress", ("FREELANCER",), m.ProgressMilestone,
          Body(NoBody, allow_empty=True), ids=MILESTONE, reply=m.Milestone,
          summary="Move a milestone forward",
          description="For the contract's freelancer: OPEN becomes IN_PROGRESS, IN_PROGRESS becomes "
                      "IN_REVIEW. The body is empty or `{}`. 409 from any other state or when the "
                      "contract is not ACTIVE."),
    Route("POST", f"{C}/milestones/<milestone_id>/evaluate", ("CLIENT",), m.EvaluateMilestone, Body(m.Evaluation),
          ids=MILESTONE, reply=m.EvaluatedMilestone,
          summary="Evaluate a milestone in review",
          description="For the contract's client, only from IN_REVIEW (else 409): `evaluatedState` "
                      "ACCEPTED makes a pending payment request for the milestone's amount (its id comes "
                      "back as `paymentRequestId`); IN_PROGRESS sends it back to work."),
    Route("POST", f"{C}/<contract_id>/terminations/request", ("CLIENT", "FREELANCER"), m.RequestTermination,
          Body(m.TerminationReason), status=201, ids=CONTRACT, reply=m.TerminationRequest,
          summary="Ask to end a contract",
          description="For a party, with a `reason`; an admin decides. 409 when the contract is not "
                      "ACTIVE or the caller already has a pending request on it."),
    Route("GET", f"{C}/<contract_id>/terminations", ANY, m.GetPendingTerminations, ids=CONTRACT,
          reply=list[m.TerminationRequest],
          summary="Pending termination requests", description=f"The contract's PENDING requests. {PARTIES}"),
    Route("POST", f"{C}/terminations/<termination_id>/handle", ("ADMIN",), m.HandleTermination,
          Body(m.TerminationDecision), ids={"termination_id": "termination_id"}, reply=m.TerminationRequest,
          summary="Decide a termination request",
          description="`chosenStatus` ACCEPTED ends the contract (its pending payment requests are "
                      "cancelled) or REJECTED; only a PENDING request of an ACTIVE contract (else 409)."),
    Route("GET", f"{C}/<contract_id>/print", ANY, m.PrintContract, ids=CONTRACT, reply=PlainText,
          hook=as_plain_text,
          summary="A contract as plain text",
          description="Its id, status, job title, client and freelancer, then each milestone's "
                      f"description, amount, due date and status, in order. {PARTIES}"),
]

mount(blueprint, "contracts", ROUTES)
