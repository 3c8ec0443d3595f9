"""HTTP routes of the jobs service (``/api/v1/jobs``, ``/api/v1/proposals``; API.md "Jobs and
proposals"), declared as data (:data:`ROUTES`, also read by the contracts routes' module).

Each handler checks the role first, then the path ids (32 hex characters, else 400), then the
body or query into the command struct (400 with field errors), then forwards it; identity
travels in the envelope, never in the body. Job reads are served from the cache when the jobs
service has filled it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import msgspec
from quart import Blueprint, Response

from ...messages import jobs as m
from ...messages._base import Message
from ...problems import FieldError, ProblemError
from ..kit import (cached_forward, call, forward, json_body, query_params, require_auth, require_role,
                   respond)

__all__ = ["blueprint", "ROUTES", "Route", "path_id", "register", "NoBody"]

blueprint = Blueprint("jobs", __name__)

_ID = re.compile(r"[0-9a-fA-F]{32}")
ANY: tuple[str, ...] = ()   # any authenticated role; None = public


class NoBody(Message):
    """An empty body or ``{}``."""


@dataclass(frozen=True)
class Route:
    method: str
    path: str                               # quart rule, path ids as <snake_name>
    roles: tuple[str, ...] | None
    command: type
    body: type | None = None                # validated body; its fields go into the command
    query: bool = False                     # the command comes from the query string
    status: int = 200                       # success status (OpenAPI)
    ids: dict[str, str] = field(default_factory=dict)   # path id -> its name in problems
    cached: Callable[[Any], str] | None = None          # cache key of the answer, from the command
    text: bool = False                      # the answer's ``text`` field served as text/plain
    reply: Any = None                       # reply type (OpenAPI)


def path_id(value: str, name: str) -> str:
    """A path id (32 hex characters) or 400."""
    if not _ID.fullmatch(value):
        raise ProblemError(400, f"{name} is not a valid id",
                           errors=[FieldError(field=name, message="must be 32 hexadecimal characters")])
    return value.lower()


async def _command(route: Route, params: dict[str, str]) -> Any:
    ids = {p: path_id(params[p], name) for p, name in route.ids.items()}
    if route.query:
        return query_params(route.command)
    if route.body is None:
        return route.command(**ids)
    body = await json_body(route.body, allow_empty=route.body is NoBody)
    fields = {} if route.body is NoBody else msgspec.structs.asdict(body)
    return route.command(**fields, **ids)


def _handler(service: str, route: Route) -> Callable[..., Awaitable[Response]]:
    name = f"{service}.{route.command.__name__}"

    async def handle(**params: str) -> Response:
        if route.roles is not None:   # first: a wrong role is 403 whatever the ids or body
            require_role(*route.roles) if route.roles else require_auth()
        command = await _command(route, params)
        if route.cached is not None:
            return await cached_forward(route.cached(command), name, command)
        if not route.text:
            return await forward(name, command)
        reply = await call(name, command)
        if reply.status >= 400:
            return respond(reply)
        text = msgspec.json.decode(reply.body)["text"]
        return Response(text, status=200, content_type="text/plain; charset=utf-8")
    return handle


def register(bp: Blueprint, service: str, routes: list[Route]) -> None:
    for route in routes:
        bp.add_url_rule(route.path, endpoint=f"{route.method.lower()}_{route.command.__name__}",
                        view_func=_handler(service, route), methods=[route.method])


J, P = "/api/v1/jobs", "/api/v1/proposals"
CLIENT, FREELANCER = ("CLIENT",), ("FREELANCER",)

ROUTES: list[Route] = [
    Route("POST", J, CLIENT, m.CreateJob, body=m.JobDraft, status=201, reply=m.Job),
    Route("GET", J, None, m.BrowseJobs, query=True, reply=m.JobPage),
    Route("GET", f"{J}/search", None, m.SearchJobs, query=True, reply=m.JobPage),
    Route("GET", f"{J}/me", CLIENT, m.GetMyJobs, reply=list[m.Job]),
    Route("GET", f"{J}/me/proposals", FREELANCER, m.GetMyProposals, reply=list[m.Proposal]),
    Route("GET", f"{J}/<job_id>", ANY, m.GetJob, ids={"job_id": "id"}, cached=lambda c: m.job_cache_key(c.job_id),
          reply=m.Job),
    Route("POST", f"{J}/<job_id>/proposals", FREELANCER, m.CreateProposal, body=m.ProposalDraft, status=201,
          ids={"job_id": "id"}, reply=m.Proposal),
    Route("GET", f"{J}/<job_id>/proposals", ANY, m.GetJobProposals, ids={"job_id": "id"}, reply=list[m.Proposal]),
    Route("POST", f"{J}/<job_id>/proposals/<proposal_id>/accept", CLIENT, m.AcceptProposal,
          ids={"job_id": "jobId", "proposal_id": "proposalId"}, reply=m.Acceptance),
    Route("GET", f"{P}/<proposal_id>", ANY, m.GetProposal, ids={"proposal_id": "id"}, reply=m.Proposal),
    Route("PUT", f"{P}/<proposal_id>", FREELANCER, m.UpdateProposal, body=m.ProposalChanges, ids={"proposal_id": "id"},
          reply=m.Proposal),
]

register(blueprint, "jobs", ROUTES)
