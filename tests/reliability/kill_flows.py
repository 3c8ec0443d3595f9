"""Worker processes SIGKILLed at random points of many hire-to-payout flows, distributed: every
effect exactly once, nothing stuck, money conserved (``docs/reliability.md``, figure 1).

    python -m tests.reliability.kill_flows --flows 100

runs the split topology (``workup gateway`` and ``workup worker <service> --processes 2`` for each
service) on the dev servers, under names of its own. ``--concurrency`` flows run at once, each:
register a client and a freelancer, post a job, propose 1–3 milestones, accept, wait for the
contract, progress, evaluate and pay each milestone, wait for it to become PAID, and in half of the
flows withdraw part of the pay. Meanwhile a killer SIGKILLs a random worker child every
``--kill-every`` seconds (±50 %), and right after a flow's accept, evaluate or pay answers, with
probability ``--targeted``, a child of the service whose outbox relay carries the next step
(jobs → contract, contracts → payment request, payments → milestone PAID). The supervisor restarts
the killed child; the broker redelivers what it held.

A client retries an uncertain answer (502/503/504, timeout) with the same ``Idempotency-Key``
(deposit, withdraw, pay) or, for the other writes, after a read shows it was not applied
(``_api.py``). Checked at the end, per flow: one job, one proposal ACCEPTED, one contract COMPLETED
with every milestone PAID (a listing that repeats a job or contract is counted apart, in ``listed_twice``), one PAID payment request and one payment transaction per milestone, the
client's ledger one CREDIT (the deposit) and one DEBIT per milestone with balance 0, the freelancer's
one CREDIT per milestone (and one DEBIT for the withdrawal) with the right balance; over all flows,
the sum of the wallets plus the withdrawals equals the deposits. Exit 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

import msgspec
import trio

from ._api import API, Api, Tally, Unexpected
from ._system import Servers, distributed, worker_children

# which service's outbox relay carries the step after each answer (docs/architecture.md)
RELAYS = {"accept": "jobs", "evaluate": "contracts", "pay": "payments"}


class Figures(msgspec.Struct):
    flows: int
    concurrency: int
    completed: int = 0
    failures: list[str] = []
    kills: int = 0
    kills_by_service: dict[str, int] = {}
    targeted_kills: dict[str, int] = {}
    milestones: int = 0
    deposits: str = "0"
    withdrawals: str = "0"
    wallets: str = "0"
    money_conserved: bool = False
    seconds: float = 0.0
    slowest_relay_s: dict[str, float] = {}        # answer → the next step seen, worst case
    # one job or contract, more than one row in its owner's listing: the jobs_by_client and
    # contracts_by_party index rows are written with the time of each attempt of jobs.CreateJob and
    # contracts.CreateContract (reported, not a failure)
    listed_twice: list[str] = []
    tally: Tally = msgspec.field(default_factory=Tally)

    @property
    def ok(self) -> bool:
        return self.completed == self.flows and not self.failures and self.money_conserved


class Killer:
    def __init__(self, system: Any, figures: Figures, rng: random.Random, min_age: float = 3.0) -> None:
        self.system, self.figures, self.rng, self.min_age = system, figures, rng, min_age

    def kill_one(self, service: str | None = None) -> bool:
        """SIGKILL one worker child (of ``service``, else of any) that has run ``min_age`` s,
        never the last live one of its service; whether one was killed."""
        import psutil
        now = time.time()
        candidates = []
        for svc, pids in worker_children(self.system).items():
            if (service and svc != service) or len(pids) < 2:
                continue
            for pid in pids:
                try:
                    if now - psutil.Process(pid).create_time() >= self.min_age:
                        candidates.append((svc, pid))
                except psutil.Error:
                    continue
        if not candidates:
            return False
        svc, pid = self.rng.choice(candidates)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return False
        self.figures.kills += 1
        self.figures.kills_by_service[svc] = self.figures.kills_by_service.get(svc, 0) + 1
        return True

    async def run(self, every: float) -> None:
        while True:
            await trio.sleep(every * self.rng.uniform(0.5, 1.5))
            await trio.to_thread.run_sync(self.kill_one)

    async def after(self, step: str, probability: float) -> None:
        if self.rng.random() < probability and await trio.to_thread.run_sync(self.kill_one, RELAYS[step]):
            self.figures.targeted_kills[step] = self.figures.targeted_kills.get(step, 0) + 1


class Outcome(msgspec.Struct):
    client: str
    freelancer: str
    deposited: Decimal
    withdrawn: Decimal
    job_id: str
    contract_id: str
    milestones: int


def _money(value: object) -> Decimal:
    return Decimal(str(value))


async def one_flow(api: Api, killer: Killer, figures: Figures, rng: random.Random, targeted: float) -> Outcome:
    tag = uuid.uuid4().hex[:12]
    client, _ = await api.register("CLIENT", f"rel-c-{tag}@example.com")
    freelancer, _ = await api.register("FREELANCER", f"rel-f-{tag}@example.com")
    title = f"Reliability job {tag}"

    async def my_job() -> Any:
        return next((j for j in await api.get(f"{API}/jobs/me", client) if j["title"] == title), None)
    job = await api.send("POST", f"{API}/jobs", 201, token=client, resolve=my_job,
                         body={"title": title, "description": "kill test", "budget": 500, "skills": ["python"],
                               "experience": "INTERMEDIATE"})
    amounts = [Decimal(rng.randint(100, 99_999)) / 100 for _ in range(rng.randint(1, 3))]

    async def my_proposal() -> Any:
        return next((p for p in await api.get(f"{API}/jobs/me/proposals", freelancer) if p["jobId"] == job["id"]), None)
    proposal = await api.send("POST", f"{API}/jobs/{job['id']}/proposals", 201, token=freelancer, resolve=my_proposal,
                              body={"coverLetter": "yes", "jobDuration": "LESS_THAN_A_MONTH",
                                    "milestones": [{"description": f"m{i}", "amount": float(a), "dueDate": "2030-01-31"}
                                                   for i, a in enumerate(amounts)]})
    accepted = await api.send("POST", f"{API}/jobs/{job['id']}/proposals/{proposal['id']}/accept", 200,
                              token=client, idempotent=True)      # the API: accepting again, same answer
    await killer.after("accept", targeted)
    contract_id = accepted["contractId"]
    t0 = trio.current_time()

    async def contract() -> Any:
        r = await api.once("GET", f"{API}/contracts/{contract_id}", token=client)
        if r is None or r.status == 404:
            return None
        if r.status != 200:
            raise Unexpected(f"GET contract: HTTP {r.status} {r.body[:200]!r}")
        return r.json()
    found = await api.until("the contract after accept", contract, 120)
    _slowest(figures, "accept → contract", trio.current_time() - t0)
    milestones = found["milestoneIds"]
    if len(milestones) != len(amounts):
        raise Unexpected(f"contract {contract_id} has {len(milestones)} milestones, the proposal {len(amounts)}")

    requests: list[str] = []
    for milestone in milestones:
        path = f"{API}/contracts/milestones/{milestone}"

        def at(*states: str) -> Any:
            async def read() -> Any:
                m = await api.get(path, client)
                return m if m["status"] in states else None
            return read
        await api.send("POST", f"{path}/progress", 200, token=freelancer, body={}, resolve=at("IN_PROGRESS"))
        await api.send("POST", f"{path}/progress", 200, token=freelancer, body={}, resolve=at("IN_REVIEW"))
        await api.send("POST", f"{path}/evaluate", 200, token=client, body={"evaluatedState": "ACCEPTED"},
                       resolve=at("ACCEPTED", "PAID"))
        await killer.after("evaluate", targeted)
        t0 = trio.current_time()

        async def payment_request() -> Any:
            return next((r["id"] for r in await api.get(f"{API}/payments/clients/me/requests", client)
                         if r["milestoneId"] == milestone), None)
        requests.append(await api.until("the payment request after evaluate", payment_request, 120))
        _slowest(figures, "evaluate → payment request", trio.current_time() - t0)

    total = sum(amounts, Decimal(0))
    await api.send("POST", f"{API}/payments/clients/me/wallet/deposit", 200, token=client, key=True,
                   body={"amount": float(total), "description": "kill test"})
    for milestone, request in zip(milestones, requests):
        answer = await api.send("POST", f"{API}/payments/requests/{request}/pay", 200, token=client, key=True)
        if answer.get("status") != "SUCCESS":
            raise Unexpected(f"pay {request}: {answer!r}")
        await killer.after("pay", targeted)
        t0 = trio.current_time()

        async def paid() -> Any:
            m = await api.get(f"{API}/contracts/milestones/{milestone}", client)
            return m if m["status"] == "PAID" else None
        await api.until("the milestone PAID after pay", paid, 120)
        _slowest(figures, "pay → milestone PAID", trio.current_time() - t0)

    withdrawn = Decimal(0)
    if rng.random() < 0.5:
        withdrawn = (total / 2).quantize(Decimal("0.01"))
        await api.send("POST", f"{API}/payments/freelancers/me/wallet/withdraw", 200, token=freelancer, key=True,
                       body={"amount": float(withdrawn)})
    return Outcome(client, freelancer, total, withdrawn, job["id"], contract_id, len(milestones))


def _slowest(figures: Figures, step: str, seconds: float) -> None:
    figures.slowest_relay_s[step] = round(max(figures.slowest_relay_s.get(step, 0.0), seconds), 2)


async def verify(api: Api, o: Outcome, listed_twice: list[str]) -> list[str]:
    """Every effect of one flow exactly once (see the module docstring); what is wrong."""
    wrong: list[str] = []
    jobs = await api.get(f"{API}/jobs/me", o.client)
    if {j["id"] for j in jobs} != {o.job_id}:
        wrong.append(f"jobs {[j['id'] for j in jobs]}, expected only {o.job_id}")
    elif len(jobs) > 1:
        listed_twice.append(f"job {o.job_id} listed {len(jobs)} times by GET /jobs/me")
    proposals = await api.get(f"{API}/jobs/{o.job_id}/proposals", o.client)
    if [p["status"] for p in proposals] != ["ACCEPTED"]:
        wrong.append(f"proposals {[p['status'] for p in proposals]}")
    contracts = await api.get(f"{API}/contracts/me", o.client)
    # the contract itself once; its listing may repeat it (a finding, counted in Figures.listed_twice)
    if {(c["id"], c["status"]) for c in contracts} != {(o.contract_id, "COMPLETED")}:
        wrong.append(f"contracts {[(c['id'], c['status']) for c in contracts]}")
    elif len(contracts) > 1:
        listed_twice.append(f"contract {o.contract_id} listed {len(contracts)} times by GET /contracts/me")
    states = [m["status"] for m in await api.get(f"{API}/contracts/{o.contract_id}/milestones", o.client)]
    if states != ["PAID"] * o.milestones:
        wrong.append(f"milestones {states}")
    requests = await api.get(f"{API}/payments/clients/me/requests", o.client)
    if sorted(r["status"] for r in requests) != ["PAID"] * o.milestones:
        wrong.append(f"payment requests {[r['status'] for r in requests]}")
    if len(await api.get(f"{API}/payments/clients/me/transactions", o.client)) != o.milestones:
        wrong.append("payment transactions")
    for who, token, balance, kinds in (
            ("client", o.client, Decimal(0), ["CREDIT"] + ["DEBIT"] * o.milestones),
            ("freelancer", o.freelancer, o.deposited - o.withdrawn,
             ["CREDIT"] * o.milestones + (["DEBIT"] if o.withdrawn else []))):
        me = "clients" if who == "client" else "freelancers"
        got = _money((await api.get(f"{API}/payments/{me}/me/wallet", token))["balance"])
        ledger = sorted(t["transactionType"] for t in await api.get(f"{API}/payments/{me}/me/wallet/transactions", token))
        if got != balance or ledger != sorted(kinds):
            wrong.append(f"{who} wallet {got} (expected {balance}), ledger {ledger} (expected {sorted(kinds)})")
    return wrong


async def run(base_url: str, system: Any, figures: Figures, *, kill_every: float, targeted: float,
              seed: int) -> Figures:
    rng = random.Random(seed)
    api = Api(base_url, figures.tally)
    killer = Killer(system, figures, rng)
    outcomes: list[Outcome] = []
    pending = iter(range(figures.flows))
    t0 = trio.current_time()

    async def lane() -> None:
        for i in pending:
            try:
                outcomes.append(await one_flow(api, killer, figures, random.Random(rng.random()), targeted))
            except Unexpected as exc:
                figures.failures.append(f"flow {i}: {exc}")

    try:
        async with trio.open_nursery() as outer:
            if kill_every > 0:
                outer.start_soon(killer.run, kill_every)
            async with trio.open_nursery() as lanes:
                for _ in range(figures.concurrency):
                    lanes.start_soon(lane)
            outer.cancel_scope.cancel()
        figures.seconds = round(trio.current_time() - t0, 1)
        deposits = withdrawals = wallets = Decimal(0)
        for o in outcomes:
            for problem in await verify(api, o, figures.listed_twice):
                figures.failures.append(f"flow of contract {o.contract_id}: {problem}")
            deposits += o.deposited
            withdrawals += o.withdrawn
            for me, token in (("clients", o.client), ("freelancers", o.freelancer)):
                wallets += _money((await api.get(f"{API}/payments/{me}/me/wallet", token))["balance"])
        figures.completed = len(outcomes)
        figures.milestones = sum(o.milestones for o in outcomes)
        figures.deposits, figures.withdrawals, figures.wallets = str(deposits), str(withdrawals), str(wallets)
        figures.money_conserved = bool(outcomes) and wallets + withdrawals == deposits
    finally:
        await api.aclose()
    return figures


def measure(flows: int, concurrency: int, kill_every: float, targeted: float, seed: int,
            servers: Servers | None = None) -> Figures:
    """Start the system, run the flows under the killer, stop it; the figures."""
    figures = Figures(flows=flows, concurrency=concurrency)
    with distributed(servers or Servers.shared(), "relkill") as system:
        trio.run(lambda: run(system.base_url, system, figures, kill_every=kill_every, targeted=targeted, seed=seed))
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.reliability.kill_flows", description=__doc__.split("\n")[0])
    p.add_argument("--flows", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--kill-every", type=float, default=2.0, help="seconds between random kills (mean)")
    p.add_argument("--targeted", type=float, default=0.3,
                   help="probability of a kill right after an accept, evaluate or pay answer")
    p.add_argument("--seed", type=int, default=16)
    a = p.parse_args(argv)
    figures = measure(a.flows, a.concurrency, a.kill_every, a.targeted, a.seed)
    print(json.dumps(msgspec.to_builtins(figures), indent=1))
    print("OK" if figures.ok else "FAILED", file=sys.stderr)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
