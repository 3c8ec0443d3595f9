"""``workup bench flow``: the hire-to-payout story, each virtual user running it end to end
(issue 11; the original system's Locust flow).

One unit is one story: register a client and a freelancer (or, with ``--reuse-users``, take a
pair registered before the measured window: password hashing dominates registration), log both
in (with ``--login-once``, before the window too: a login is one password hash), the client posts a job, the freelancer searches for it and proposes, the client accepts, reads
the contract, the freelancer progresses the milestone twice, the client evaluates it, deposits
and pays, the freelancer reads the wallet, the client prints the contract. Every answer's status
and the fields the next step needs are checked; a failed step ends the story and is counted
under its name. Routes: ``docs/api.md``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import click
import msgspec
import trio

from .http import Client, HttpError, Response
from .loadgen import Recorder, UnitFailed
from .report import Check, RunReport
from .runner import LoadOptions, load_options, run_scenario

__all__ = ["command", "Flow", "STEPS"]

API = "/api/v1"
PASSWORD = "bench-pass-1"
AMOUNT = 100

# Step names, in story order (the report lists them so).
STEPS = ("register client", "register freelancer", "login client", "login freelancer", "post job",
         "search", "propose", "accept", "get contract", "progress 1", "progress 2", "evaluate",
         "deposit", "pay", "read wallet", "print contract")

Verify = Callable[[Any], str | None]


class Pair(msgspec.Struct):
    client_email: str
    freelancer_email: str
    tokens: tuple[str, str] | None = None    # (client, freelancer) with --login-once


def _field(body: Any, name: str) -> Any:
    if not isinstance(body, dict) or name not in body:
        raise KeyError(name)
    return body[name]


async def call(http: Client, rec: Recorder, step: str, method: str, path: str, status: int, *,
               body: object = None, token: str | None = None, check: Verify | None = None,
               text: bool = False) -> Any:
    """One request of a unit: timed, its status and ``check`` verified, recorded under ``step``;
    the decoded JSON body (or text). Any failure is recorded and raised as :class:`UnitFailed`."""
    t0 = trio.current_time()
    try:
        response = await http.request(method, path, body=body, token=token)
    except (HttpError, trio.TooSlowError) as exc:
        rec.request(step, trio.current_time() - t0, "connection" if isinstance(exc, HttpError) else "timeout")
        raise UnitFailed(step, str(exc) or type(exc).__name__) from None
    elapsed = trio.current_time() - t0
    problem = _problem(response, status, check, text)
    rec.request(step, elapsed, problem[0] if problem else None)
    if problem:
        raise UnitFailed(step, problem[1])
    return response.body.decode() if text else response.json()


def _problem(response: Response, status: int, check: Verify | None, text: bool) -> tuple[str, str] | None:
    """``(error class, detail)`` of a wrong answer, or ``None``."""
    if response.status != status:
        return f"HTTP {response.status}", f"HTTP {response.status}: {response.body[:200]!r}"
    try:
        decoded = response.body.decode() if text else response.json()
        wrong = check(decoded) if check else None
    except (ValueError, KeyError, TypeError) as exc:
        wrong = f"unexpected body ({exc!r}): {response.body[:200]!r}"
    return ("bad body", wrong) if wrong else None


def _has(*names: str) -> Verify:
    def check(body: Any) -> str | None:
        missing = [n for n in names if not isinstance(body, dict) or n not in body]
        return f"missing {', '.join(missing)}" if missing else None
    return check


def _equals(name: str, value: object) -> Verify:
    def check(body: Any) -> str | None:
        return None if _field(body, name) == value else f"{name} is {body[name]!r}, expected {value!r}"
    return check


class Flow:
    """The scenario (see the module docstring)."""

    name = "flow"
    unit = "flow"

    def __init__(self, *, reuse_users: bool, login_once: bool = False) -> None:
        self.reuse_users = reuse_users or login_once
        self.login_once = login_once
        self.run_tag = secrets.token_hex(4)
        self.http: Client | None = None
        self.pairs: list[Pair] = []
        self._serial = 0

    def settings(self) -> dict[str, object]:
        return {"reuse_users": self.reuse_users, "login_once": self.login_once, "amount": AMOUNT}

    def _emails(self, user: int) -> Pair:
        self._serial += 1
        tag = f"{self.run_tag}-{user}-{self._serial}"
        return Pair(f"bench-c-{tag}@example.com", f"bench-f-{tag}@example.com")

    async def _register(self, http: Client, rec: Recorder, pair: Pair) -> None:
        await call(http, rec, "register client", "POST", f"{API}/users/clients/register", 201,
                   body={"email": pair.client_email, "password": PASSWORD, "clientName": "Bench Client"},
                   check=_equals("userType", "CLIENT"))
        await call(http, rec, "register freelancer", "POST", f"{API}/users/freelancers/register", 201,
                   body={"email": pair.freelancer_email, "password": PASSWORD, "fullName": "Bench Freelancer"},
                   check=_equals("userType", "FREELANCER"))

    async def _login(self, http: Client, rec: Recorder, pair: Pair) -> tuple[str, str]:
        login = lambda email: {"email": email, "password": PASSWORD}  # noqa: E731
        client = (await call(http, rec, "login client", "POST", f"{API}/users/login", 200,
                             body=login(pair.client_email), check=_equals("userType", "CLIENT")))["authToken"]
        freelancer = (await call(http, rec, "login freelancer", "POST", f"{API}/users/login", 200,
                                 body=login(pair.freelancer_email), check=_equals("userType", "FREELANCER")))["authToken"]
        return client, freelancer

    async def prepare(self, base_url: str, users: int) -> None:
        self.http = Client(base_url)
        if not self.reuse_users:
            return
        # Registered before the window, a few at a time: each is one password hash.
        self.pairs = [self._emails(user) for user in range(users)]
        unmeasured = Recorder(None, measured=False)
        limiter = trio.CapacityLimiter(4)

        async def one(pair: Pair) -> None:
            async with limiter:
                assert self.http is not None
                await self._register(self.http, unmeasured, pair)
                if self.login_once:
                    pair.tokens = await self._login(self.http, unmeasured, pair)

        try:
            async with trio.open_nursery() as nursery:
                for pair in self.pairs:
                    nursery.start_soon(one, pair)
        except* UnitFailed as group:
            raise RuntimeError(f"pre-registering the users failed: {group.exceptions[0]}") from None

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    async def run(self, user: int, rec: Recorder) -> None:
        http = self.http
        assert http is not None
        if self.reuse_users:
            pair = self.pairs[user % len(self.pairs)]
        else:
            pair = self._emails(user)
            await self._register(http, rec, pair)
        client, freelancer = pair.tokens or await self._login(http, rec, pair)
        word = "zb" + secrets.token_hex(6)
        job = await call(http, rec, "post job", "POST", f"{API}/jobs", 201, token=client,
                         body={"title": f"Bench job {word}", "description": "A hire-to-payout bench story",
                               "budget": AMOUNT, "skills": ["python"], "experience": "INTERMEDIATE"},
                         check=_has("id"))
        job_id = job["id"]

        def found(body: Any) -> str | None:
            ids = [j["id"] for j in _field(body, "jobs")]
            return None if job_id in ids else f"job {job_id} not in the results"
        await call(http, rec, "search", "GET", f"{API}/jobs/search?query={word}", 200, token=freelancer, check=found)
        proposal = await call(http, rec, "propose", "POST", f"{API}/jobs/{job_id}/proposals", 201, token=freelancer,
                              body={"coverLetter": "I can do this", "jobDuration": "LESS_THAN_A_MONTH",
                                    "milestones": [{"description": "All of it", "amount": AMOUNT,
                                                    "dueDate": "2030-01-31"}]},
                              check=_equals("status", "PENDING"))
        accepted = await call(http, rec, "accept", "POST", f"{API}/jobs/{job_id}/proposals/{proposal['id']}/accept",
                              200, token=client, check=_has("contractId"))
        contract_id = accepted["contractId"]

        def active(body: Any) -> str | None:
            if _field(body, "status") != "ACTIVE" or len(_field(body, "milestoneIds")) != 1:
                return f"contract not ACTIVE with one milestone: {body!r}"
            return None
        contract = await call(http, rec, "get contract", "GET", f"{API}/contracts/{contract_id}", 200,
                              token=client, check=active)
        milestone = contract["milestoneIds"][0]
        progress = f"{API}/contracts/milestones/{milestone}/progress"
        await call(http, rec, "progress 1", "POST", progress, 200, token=freelancer, body={},
                   check=_equals("status", "IN_PROGRESS"))
        await call(http, rec, "progress 2", "POST", progress, 200, token=freelancer, body={},
                   check=_equals("status", "IN_REVIEW"))
        evaluated = await call(http, rec, "evaluate", "POST", f"{API}/contracts/milestones/{milestone}/evaluate",
                               200, token=client, body={"evaluatedState": "ACCEPTED"},
                               check=lambda b: _has("paymentRequestId")(b) or _equals("status", "ACCEPTED")(b))

        def at_least(body: Any) -> str | None:
            return None if _field(body, "balance") >= AMOUNT else f"balance {body['balance']} below {AMOUNT}"
        await call(http, rec, "deposit", "POST", f"{API}/payments/clients/me/wallet/deposit", 200, token=client,
                   body={"amount": AMOUNT, "description": "bench"}, check=at_least)
        await call(http, rec, "pay", "POST", f"{API}/payments/requests/{evaluated['paymentRequestId']}/pay", 200,
                   token=client, check=_equals("status", "SUCCESS"))
        await call(http, rec, "read wallet", "GET", f"{API}/payments/freelancers/me/wallet", 200, token=freelancer,
                   check=at_least)

        def printed(text: str) -> str | None:
            return None if contract_id in text else "the contract id is not in the print-out"
        await call(http, rec, "print contract", "GET", f"{API}/contracts/{contract_id}/print", 200, token=client,
                   check=printed, text=True)

    def targets(self, report: RunReport) -> list[Check]:
        """Every step ran and none failed (the common checks count the failures)."""
        ran = {s.name for s in report.steps}
        expected = set(STEPS) - ({"register client", "register freelancer"} if self.reuse_users else set()) - (
            {"login client", "login freelancer"} if self.login_once else set())
        missing = sorted(expected - ran)
        return [Check(target="every step of the story ran", value=len(expected) - len(missing),
                      limit=len(expected), met=not missing)]


@click.command(name="flow")
@click.option("--reuse-users", is_flag=True,
              help="register one client and one freelancer per user before the measured window "
                   "(default: every story registers its own pair)")
@click.option("--login-once", is_flag=True,
              help="with the users reused, log them in before the measured window too and reuse their tokens: "
                   "no password hash per story (issue 15's table; `workup bench users` measures logins)")
@load_options(users=4, duration=20.0, warmup=0.0, p99_bound_ms=10_000)
def command(reuse_users: bool, login_once: bool, **options: Any) -> None:
    """The hire-to-payout story per virtual user, every answer checked (issue 11)."""
    run_scenario(Flow(reuse_users=reuse_users, login_once=login_once), msgspec.convert(options, LoadOptions))
