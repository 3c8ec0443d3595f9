"""HTTP routes of the contracts service (``/api/v1/contracts``; API.md "Contracts").

Role first, then path ids and body, then the command; the parties-only rule is the service's
(it knows the contract). ``print`` is served as ``text/plain``.
"""

from __future__ import annotations

import msgspec
from quart import Blueprint, Response

from ...messages import contracts as m
from ...messages._base import Message
from ..kit import call, forward, json_body, require_auth, require_role, respond
from .jobs import _with, path_id

__all__ = ["blueprint", "ROUTES"]

blueprint = Blueprint("contracts", __name__)

C = "/api/v1/contracts"
PARTY = ("CLIENT", "FREELANCER")

ROUTES: list[tuple[str, str, tuple[str, ...] | None, type, int]] = [
    ("GET", f"{C}/me", (), m.GetMyContracts, 200),
    ("GET", f"{C}/{{id}}", (), m.GetContract, 200),
    ("GET", f"{C}/{{id}}/milestones", (), m.GetContractMilestones, 200),
    ("GET", f"{C}/milestones/{{id}}", (), m.GetMilestone, 200),
    ("POST", f"{C}/milestones/{{id}}/progress", ("FREELANCER",), m.ProgressMilestone, 200),
    ("POST", f"{C}/milestones/{{id}}/evaluate", ("CLIENT",), m.EvaluateMilestone, 200),
    ("POST", f"{C}/{{id}}/terminations/request", PARTY, m.RequestTermination, 201),
    ("GET", f"{C}/{{id}}/terminations", (), m.GetPendingTerminations, 200),
    ("POST", f"{C}/terminations/{{id}}/handle", ("ADMIN",), m.HandleTermination, 200),
    ("GET", f"{C}/{{id}}/print", (), m.PrintContract, 200),
]


class NoBody(Message):
    """An empty body or ``{}``."""


@blueprint.get(f"{C}/me")
async def my_contracts() -> Response:
    require_auth()
    return await forward("contracts.GetMyContracts", m.GetMyContracts())


@blueprint.get(f"{C}/<contract_id>")
async def get_contract(contract_id: str) -> Response:
    require_auth()
    return await forward("contracts.GetContract", m.GetContract(contract_id=path_id(contract_id, "id")))


@blueprint.get(f"{C}/<contract_id>/milestones")
async def contract_milestones(contract_id: str) -> Response:
    require_auth()
    return await forward("contracts.GetContractMilestones",
                         m.GetContractMilestones(contract_id=path_id(contract_id, "id")))


@blueprint.get(f"{C}/milestones/<milestone_id>")
async def get_milestone(milestone_id: str) -> Response:
    require_auth()
    return await forward("contracts.GetMilestone", m.GetMilestone(milestone_id=path_id(milestone_id, "id")))


@blueprint.post(f"{C}/milestones/<milestone_id>/progress")
async def progress_milestone(milestone_id: str) -> Response:
    require_role("FREELANCER")
    milestone_id = path_id(milestone_id, "id")
    await json_body(NoBody, allow_empty=True)
    return await forward("contracts.ProgressMilestone", m.ProgressMilestone(milestone_id=milestone_id))


@blueprint.post(f"{C}/milestones/<milestone_id>/evaluate")
async def evaluate_milestone(milestone_id: str) -> Response:
    require_role("CLIENT")
    milestone_id = path_id(milestone_id, "id")
    body = await json_body(m.Evaluation)
    return await forward("contracts.EvaluateMilestone", _with(m.EvaluateMilestone, body, milestone_id=milestone_id))


@blueprint.post(f"{C}/<contract_id>/terminations/request")
async def request_termination(contract_id: str) -> Response:
    require_role(*PARTY)
    contract_id = path_id(contract_id, "id")
    body = await json_body(m.TerminationReason)
    return await forward("contracts.RequestTermination", _with(m.RequestTermination, body, contract_id=contract_id))


@blueprint.get(f"{C}/<contract_id>/terminations")
async def pending_terminations(contract_id: str) -> Response:
    require_auth()
    return await forward("contracts.GetPendingTerminations",
                         m.GetPendingTerminations(contract_id=path_id(contract_id, "id")))


@blueprint.post(f"{C}/terminations/<termination_id>/handle")
async def handle_termination(termination_id: str) -> Response:
    require_role("ADMIN")
    termination_id = path_id(termination_id, "id")
    body = await json_body(m.TerminationDecision)
    return await forward("contracts.HandleTermination",
                         _with(m.HandleTermination, body, termination_id=termination_id))


@blueprint.get(f"{C}/<contract_id>/print")
async def print_contract(contract_id: str) -> Response:
    require_auth()
    reply = await call("contracts.PrintContract", m.PrintContract(contract_id=path_id(contract_id, "id")))
    if reply.status >= 400:
        return respond(reply)
    text = msgspec.json.decode(reply.body, type=m.ContractText).text
    return Response(text, status=200, content_type="text/plain; charset=utf-8")
