"""The one Route type: the path-id rule (pure, and the same answers on every service over real
HTTP), cache keys from the table, and the command a Route builds from ids, body and query."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from workup.gateway import TokenService
from workup.gateway.routes import contracts as contracts_routes
from workup.gateway.routes import jobs as jobs_routes
from workup.gateway.routes import payments as payments_routes
from workup.gateway.routes import users as users_routes
from workup.gateway.routing import CALLER, CacheKey, Mounted, Query, Route, RouteCall, id_name, path_id
from workup.messages import contracts as cm
from workup.messages import jobs as jm
from workup.messages import payments as pm
from workup.messages import users as um
from workup.problems import ProblemError
from workup.transport.envelope import Caller, Reply

from ._serve import KEY, make_app, served

HEX = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("spelling", [HEX, HEX.upper(), "01234567-89ab-cdef-0123-456789abcdef",
                                      "01234567-89AB-CDEF-0123-456789ABCDEF"])
def test_a_uuid_in_either_spelling_becomes_the_services_form(spelling: str) -> None:
    assert path_id(spelling) == HEX


@pytest.mark.parametrize("bad", ["", "nope", HEX[:-1], HEX + "0", "../etc", "{" + HEX + "}", "urn:uuid:" + HEX,
                                 "0123-4567-89ab-cdef-0123-4567-89ab-cdef", " " + HEX[1:], "+" + HEX[1:],
                                 HEX[:-1] + "g", HEX[:16] + "_" + HEX[17:]])
def test_anything_else_is_400_naming_the_id(bad: str) -> None:
    with pytest.raises(ProblemError) as exc:
        path_id(bad, "jobId")
    problem = exc.value.problem
    assert problem.status == 400 and problem.detail == "jobId is not a valid id"
    assert problem.errors is not None and [e.field for e in problem.errors] == ["jobId"]


def test_id_names_follow_api_md() -> None:
    assert id_name("job_id", ["job_id"]) == "id"
    assert id_name("job_id", ["job_id", "proposal_id"]) == "jobId"
    assert id_name("proposal_id", ["job_id", "proposal_id"]) == "proposalId"


def test_cache_keys_come_from_the_named_key_function() -> None:
    caller = Caller("u1", "CLIENT")
    command = jm.GetJob(job_id=HEX)
    assert CacheKey(jm.job_cache_key, ("job_id",)).of(caller, command) == jm.job_cache_key(HEX)
    pair = CacheKey(lambda a, b: f"{a}/{b}", ("job_id", CALLER))
    assert pair.of(caller, command) == f"{HEX}/u1"


def test_source_says_where_the_command_comes_from() -> None:
    assert Route("GET", "/x", None, jm.GetMyJobs).source == "none"
    assert Route("GET", "/x", None, jm.BrowseJobs, Query()).source == "query"


# --- over HTTP: every service gives the same answers ---------------------------------------------

class Recorder:
    """A transport that answers every command 404 and remembers what it was sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def call(self, command: str, request: Any, *, caller: Caller, timeout: float,
                   request_id: str | None = None) -> Reply:
        self.sent.append((command, request))
        body = b'{"type":"about:blank","title":"Not Found","status":404,"detail":"no such thing"}'
        return Reply(status=404, body=body)


ROUTES_WITH_ONE_ID = {
    "jobs": ("/api/v1/jobs/{}", "jobs.GetJob", "job_id"),
    "contracts": ("/api/v1/contracts/{}", "contracts.GetContract", "contract_id"),
    "payments": ("/api/v1/payments/requests/{}", "payments.GetPaymentRequest", "id"),
    "users": ("/api/v1/users/freelancers/{}", "users.GetPublicFreelancer", "freelancer_id"),
}


async def test_the_same_id_gets_the_same_answer_on_every_service() -> None:
    transport = Recorder()
    auth = {"Authorization": f"Bearer {TokenService([KEY]).issue(uuid.uuid4().hex, 'CLIENT')}"}
    hyphenated = str(uuid.UUID(HEX)).upper()
    async with served(make_app(transport)) as (client, _):
        for service, (path, command, field) in ROUTES_WITH_ONE_ID.items():
            transport.sent.clear()
            r = await client.get(path.format(hyphenated), headers=auth)
            assert r.status_code == 404, (service, r.text)       # the service was asked...
            [(sent, request)] = transport.sent
            assert sent == command and getattr(request, field) == HEX   # ...with its own form of the id
        transport.sent.clear()
        for garbage in ("not-an-id", HEX + "0", "{" + HEX + "}"):
            answers = set()
            for service, (path, _, _) in ROUTES_WITH_ONE_ID.items():
                r = await client.get(path.format(garbage), headers=auth)
                assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", service
                answers.add(r.content)
            assert len(answers) == 1, answers                    # byte for byte the same problem
            assert transport.sent == []                           # no service was asked


# --- the command a Route builds ------------------------------------------------------------------

def _served(service: str, route: Route, **params: str) -> RouteCall:
    return RouteCall(Mounted(service, route), Caller("u1", "CLIENT"), params)


async def _command(route: Route, service: str = "svc", *, body: bytes = b"", query: str = "",
                   **params: str) -> Any:
    app = make_app()
    headers = {"Content-Type": "application/json"} if body else {}
    async with app.test_request_context(f"/x?{query}", method=route.method, headers=headers, data=body):
        return await _served(service, route, **params).command()


async def test_commands_from_ids_body_and_query() -> None:
    accept = next(r for r in jobs_routes.ROUTES if r.command is jm.AcceptProposal)
    hyphenated = str(uuid.UUID(HEX))
    assert await _command(accept, job_id=hyphenated, proposal_id=HEX.upper()) == \
        jm.AcceptProposal(job_id=HEX, proposal_id=HEX)
    with pytest.raises(ProblemError) as exc:
        await _command(accept, job_id=HEX, proposal_id="nope")
    assert exc.value.problem.errors is not None and exc.value.problem.errors[0].field == "proposalId"

    propose = next(r for r in jobs_routes.ROUTES if r.command is jm.CreateProposal)
    draft = {"coverLetter": "c", "jobDuration": "LESS_THAN_A_MONTH",
             "milestones": [{"description": "d", "amount": 10, "dueDate": "2030-01-01"}]}
    made = await _command(propose, body=msgspec.json.encode(draft), job_id=HEX)
    assert isinstance(made, jm.CreateProposal) and made.job_id == HEX and made.cover_letter == "c"

    deposit = next(r for r in payments_routes.ROUTES if r.command is pm.Deposit)
    made = await _command(deposit, body=b'{"amount": 12.50, "description": "d"}')
    assert made == pm.Deposit(amount=Decimal("12.50"), description="d")

    login = next(r for r in users_routes.ROUTES if r.command is um.Login)   # the body is the command
    made = await _command(login, body=b'{"email": "a@example.com", "password": "whatever-123"}')
    assert made == um.Login(email="a@example.com", password="whatever-123")

    browse = next(r for r in jobs_routes.ROUTES if r.command is jm.BrowseJobs)
    assert isinstance(await _command(browse, query="pageLimit=3"), jm.BrowseJobs)

    progress = next(r for r in contracts_routes.ROUTES if r.command is cm.ProgressMilestone)
    assert await _command(progress, milestone_id=HEX) == cm.ProgressMilestone(milestone_id=HEX)
