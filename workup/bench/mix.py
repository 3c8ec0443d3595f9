"""``workup bench mix``: a weighted marketplace mix, mostly reads, against a data set it seeds
first through the API (not measured).

The data set: ``--accounts`` client/freelancer pairs (each one password hash to register and
one to log in), ``--jobs`` jobs posted by the clients (every title has the word ``benchmix`` and
one word of a small vocabulary, so searches hit a known share), and one contract per pair (a job,
a proposal, accepted) plus a deposit in every wallet. One unit is one request, drawn by weight
with a seeded random generator (``--seed``: the same seed gives the same sequence):

    browse, search, get job, get proposals, get contract, wallet      reads (90 % by default)
    post job, deposit                                                  writes

Its own targets (``--check``): no error, and p99 within 5 × p50 (issue 11's target for the mix
at 80 % of saturation).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import click
import msgspec
import trio

from .flow import API, PASSWORD, call
from .http import Client
from .loadgen import Recorder, UnitFailed
from .report import Check, RunReport
from .runner import LoadOptions, load_options, run_scenario

__all__ = ["command", "Mix", "WEIGHTS", "parse_weights", "P99_OVER_P50"]

VOCABULARY = ("python", "design", "mobile", "data", "cloud", "audio", "video", "writing")
WEIGHTS = {"browse": 15, "search": 20, "get job": 25, "get proposals": 10, "get contract": 10,
           "wallet": 10, "post job": 7, "deposit": 3}
P99_OVER_P50 = 5.0


def parse_weights(spec: str | None) -> dict[str, int]:
    """``"search=40,post job=0"`` on top of :data:`WEIGHTS`; at least one weight above 0."""
    weights = dict(WEIGHTS)
    for item in filter(None, (part.strip() for part in (spec or "").split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in WEIGHTS or not value.strip().isdigit():
            raise ValueError(f"--weights: expected NAME=INTEGER with NAME one of {', '.join(WEIGHTS)}; got {item!r}")
        weights[name] = int(value)
    if not any(weights.values()):
        raise ValueError("--weights: every weight is 0")
    return weights


class Account(msgspec.Struct):
    client: str            # tokens
    freelancer: str
    contract_id: str
    job_id: str            # the contract's job, with one proposal on it


class Mix:
    """The scenario (see the module docstring)."""

    name = "mix"
    unit = "request"

    def __init__(self, *, accounts: int, jobs: int, weights: dict[str, int], seed: int) -> None:
        self.n_accounts, self.n_jobs, self.weights, self.seed = accounts, jobs, weights, seed
        self.random = random.Random(seed)
        self._names = [n for n, w in weights.items() if w > 0]
        self._cumulative = [sum(weights[n] for n in self._names[:i + 1]) for i in range(len(self._names))]
        self.http: Client | None = None
        self.accounts: list[Account] = []
        self.job_ids: list[str] = []

    def settings(self) -> dict[str, object]:
        return {"accounts": self.n_accounts, "jobs": self.n_jobs, "weights": self.weights, "seed": self.seed}

    async def _seed_account(self, http: Client, rec: Recorder, tag: str) -> Account:
        tokens = []
        for role, path, name in (("CLIENT", "clients", "clientName"), ("FREELANCER", "freelancers", "fullName")):
            email = f"mix-{role.lower()}-{tag}@example.com"
            await call(http, rec, f"seed {role}", "POST", f"{API}/users/{path}/register", 201,
                       body={"email": email, "password": PASSWORD, name: "Mix"})
            tokens.append((await call(http, rec, "seed login", "POST", f"{API}/users/login", 200,
                                      body={"email": email, "password": PASSWORD}))["authToken"])
        client, freelancer = tokens
        job = await call(http, rec, "seed job", "POST", f"{API}/jobs", 201, token=client,
                         body={"title": "benchmix contract job", "description": "seeded"})
        proposal = await call(http, rec, "seed proposal", "POST", f"{API}/jobs/{job['id']}/proposals", 201,
                              token=freelancer, body={"coverLetter": "seeded", "jobDuration": "LESS_THAN_A_MONTH",
                                                      "milestones": [{"description": "m", "amount": 10,
                                                                      "dueDate": "2030-01-31"}]})
        accepted = await call(http, rec, "seed accept", "POST",
                              f"{API}/jobs/{job['id']}/proposals/{proposal['id']}/accept", 200, token=client)
        for token, who in ((client, "clients"), (freelancer, "freelancers")):
            await call(http, rec, "seed deposit", "POST", f"{API}/payments/{who}/me/wallet/deposit", 200,
                       token=token, body={"amount": 1000})
        return Account(client=client, freelancer=freelancer, contract_id=accepted["contractId"], job_id=job["id"])

    async def prepare(self, base_url: str, users: int) -> None:
        http = self.http = Client(base_url)
        rec = Recorder(None, measured=False)
        run = secrets.token_hex(4)
        limiter = trio.CapacityLimiter(8)
        accounts: list[Account] = []

        async def account(i: int) -> None:
            async with limiter:
                accounts.append(await self._seed_account(http, rec, f"{run}-{i}"))

        async def job(i: int) -> None:
            async with limiter:
                owner = accounts[i % len(accounts)]
                word = VOCABULARY[i % len(VOCABULARY)]
                body = await call(http, rec, "seed job", "POST", f"{API}/jobs", 201, token=owner.client,
                                  body={"title": f"benchmix {word} job {i}", "description": "seeded for the mix",
                                        "skills": [word], "budget": 100 + i})
                self.job_ids.append(body["id"])

        try:
            async with trio.open_nursery() as nursery:
                for i in range(self.n_accounts):
                    nursery.start_soon(account, i)
            async with trio.open_nursery() as nursery:
                for i in range(self.n_jobs):
                    nursery.start_soon(job, i)
        except* UnitFailed as group:
            raise RuntimeError(f"seeding the data set failed: {group.exceptions[0]}") from None
        self.accounts = sorted(accounts, key=lambda a: a.contract_id)
        self.job_ids.sort()

    async def aclose(self) -> None:
        if self.http is not None:
            await self.http.aclose()

    def pick(self) -> str:
        """The next request's name, by weight (seeded)."""
        x = self.random.random() * self._cumulative[-1]
        for name, edge in zip(self._names, self._cumulative):
            if x < edge:
                return name
        return self._names[-1]

    def run(self, user: int, rec: Recorder) -> Awaitable[None]:
        http = self.http
        assert http is not None
        name = self.pick()
        a = self.accounts[user % len(self.accounts)]
        job_id = self.random.choice(self.job_ids)
        word = self.random.choice(VOCABULARY)
        has: Callable[[str], Callable[[Any], str | None]] = \
            lambda key: lambda body: None if isinstance(body, dict) and key in body else f"no {key}"  # noqa: E731
        is_list = lambda body: None if isinstance(body, list) else "not a list"  # noqa: E731
        requests: dict[str, Callable[[], Awaitable[Any]]] = {
            "browse": lambda: call(http, rec, name, "GET", f"{API}/jobs?pageLimit=20", 200, check=has("jobs")),
            "search": lambda: call(http, rec, name, "GET", f"{API}/jobs/search?query=benchmix+{word}&pageLimit=20",
                                   200, check=has("jobs")),
            "get job": lambda: call(http, rec, name, "GET", f"{API}/jobs/{job_id}", 200, token=a.freelancer,
                                    check=has("id")),
            "get proposals": lambda: call(http, rec, name, "GET", f"{API}/jobs/{a.job_id}/proposals", 200,
                                          token=a.client, check=is_list),
            "get contract": lambda: call(http, rec, name, "GET", f"{API}/contracts/{a.contract_id}", 200,
                                         token=a.freelancer, check=has("status")),
            "wallet": lambda: call(http, rec, name, "GET", f"{API}/payments/freelancers/me/wallet", 200,
                                   token=a.freelancer, check=has("balance")),
            "post job": lambda: call(http, rec, name, "POST", f"{API}/jobs", 201, token=a.client,
                                     body={"title": f"benchmix {word} new", "description": "posted by the mix"},
                                     check=has("id")),
            "deposit": lambda: call(http, rec, name, "POST", f"{API}/payments/clients/me/wallet/deposit", 200,
                                    token=a.client, body={"amount": 1}, check=has("balance")),
        }
        return requests[name]()

    def targets(self, report: RunReport) -> list[Check]:
        p50, p99 = report.unit_latency.p50_ms, report.unit_latency.p99_ms
        ratio = p99 / p50 if p50 and p99 is not None else None
        return [Check(target="p99 / p50 of the requests", value=None if ratio is None else round(ratio, 2),
                      limit=P99_OVER_P50, met=ratio is not None and ratio <= P99_OVER_P50)]


@click.command(name="mix")
@click.option("--accounts", type=click.IntRange(1, 1000), default=4, show_default=True,
              help="client/freelancer pairs seeded (each with a contract and deposits)")
@click.option("--jobs", type=click.IntRange(1, 1_000_000), default=200, show_default=True,
              help="jobs seeded through the API before the run")
@click.option("--weights", default=None,
              help=f"NAME=WEIGHT,... over the defaults ({', '.join(f'{k}={v}' for k, v in WEIGHTS.items())})")
@click.option("--seed", type=int, default=1, show_default=True, help="seed of the request sequence")
@load_options(users=16, duration=20.0, warmup=2.0, p99_bound_ms=500)
def command(accounts: int, jobs: int, weights: str | None, seed: int, **options: Any) -> None:
    """A weighted marketplace mix, mostly reads, on a seeded data set (issue 11)."""
    try:
        parsed = parse_weights(weights)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--weights") from None
    run_scenario(Mix(accounts=accounts, jobs=jobs, weights=parsed, seed=seed), msgspec.convert(options, LoadOptions))
