"""Cross-service steps survive a worker killed between the two steps.

accept → contracts.CreateContract and evaluate → payments.CreatePaymentRequest: a peer that
never answers holds the worker inside the second step; the test kills the worker there (its
scope is cancelled at once, as a killed process stops), restarts it with a working peer and
checks that the background relay finishes the step exactly once.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from workup.transport.envelope import Caller
from workup.transport import DeadlineExceeded
from workup.messages.contracts import (CreateContract, EvaluateMilestone, GetContract, GetContractMilestones,
    GetMilestone, GetMyContracts, ProgressMilestone)
from workup.messages.jobs import AcceptProposal, CreateJob, GetJob, GetJobProposals
from workup.messages.payments import CreatePaymentRequest
from workup.runtime import Service
from workup.testing import fake_service
from workup.services.contracts import relay as contracts_relay
from workup.services.jobs import accept as jobs_relay
from workup.storage import opened_store
from workup.services.contracts.relay import PAYMENT
from workup.services.contracts.store import TABLES, ContractsStore

from ._fixtures import store_settings
from ._services import FakePayments, new_id, running
from .test_service_flow import proposal


@pytest.fixture(params=["sqlite", "cassandra"])
def settings(request, tmp_path, monkeypatch):
    for module in (jobs_relay, contracts_relay):
        monkeypatch.setattr(module.RELAY, "poll", 0.1)
        monkeypatch.setattr(module.RELAY, "grace_ms", 200)
    return store_settings(request.param, tmp_path, request)


def stuck(name: str, command: type, reached: trio.Event) -> Service[Any]:
    """A peer whose ``command`` is received and never answered."""
    async def hang(ctx: Any, req: Any) -> None:
        reached.set()
        await trio.sleep_forever()
    return fake_service(name, **{command.__name__: hang})


DEADLINE = 3.0   # the request's deadline: its redelivery after the restart is dropped, so only
                 # the relay can finish the step


async def unanswered(h, command: str, request: Any, caller: Caller) -> None:
    """A call whose worker is killed mid-way: it never gets a reply."""
    with pytest.raises(DeadlineExceeded):
        await h.call(command, request, caller, timeout=DEADLINE)


async def eventually(check, timeout: float = 10) -> Any:
    with trio.fail_after(timeout):
        while True:
            result = await check()
            if result:
                return result
            await trio.sleep(0.05)


async def test_accept_killed_before_the_contract_exists(tmp_path, settings):
    client, fay, sam = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER"), Caller(new_id(), "FREELANCER")
    async with running(tmp_path, ("jobs",), settings=settings) as h:
        reached = trio.Event()
        await h.start("contracts", stuck("contracts", CreateContract, reached))
        job = await h.ok("jobs.CreateJob", CreateJob(title="t", description="d"), client, 201)
        p = await h.ok("jobs.CreateProposal", proposal(job["id"]), fay, 201)
        other = await h.ok("jobs.CreateProposal", proposal(job["id"]), sam, 201)
        h.nursery.start_soon(unanswered, h, "jobs.AcceptProposal", AcceptProposal(job_id=job["id"], proposal_id=p["id"]), client)
        with trio.fail_after(10):
            await reached.wait()             # the job is claimed; the contract is being asked for
        h.kill("jobs")
        h.kill("contracts")
        await trio.sleep(DEADLINE)
        await h.start("contracts")
        await h.start("jobs")                # its relay finishes the acceptance
        contracts = await eventually(lambda: h.ok("contracts.GetMyContracts", GetMyContracts(), client))
        assert len(contracts) == 1 and contracts[0]["proposalId"] == p["id"]
        again = await h.ok("jobs.AcceptProposal", AcceptProposal(job_id=job["id"], proposal_id=p["id"]), client)
        assert again["contractId"] == contracts[0]["id"]
        assert (await h.ok("jobs.GetJob", GetJob(job_id=job["id"]), client))["active"] is False
        statuses = {x["id"]: x["status"] for x in await h.ok("jobs.GetJobProposals", GetJobProposals(job_id=job["id"]), client)}
        assert statuses == {p["id"]: "ACCEPTED", other["id"]: "REJECTED"}
        assert await h.ok("contracts.GetMyContracts", GetMyContracts(), client) == contracts   # still one


async def test_evaluate_killed_before_the_payment_request_exists(tmp_path, settings):
    client, fay = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER")
    payments = FakePayments()
    async with running(tmp_path, ("jobs", "contracts"), settings=settings, payments=payments) as h:
        job = await h.ok("jobs.CreateJob", CreateJob(title="t", description="d"), client, 201)
        p = await h.ok("jobs.CreateProposal", proposal(job["id"]), fay, 201)
        cid = (await h.ok("jobs.AcceptProposal", AcceptProposal(job_id=job["id"], proposal_id=p["id"]), client))["contractId"]
        mid = (await h.ok("contracts.GetContract", GetContract(contract_id=cid), client))["milestoneIds"][0]
        for _ in range(2):
            await h.ok("contracts.ProgressMilestone", ProgressMilestone(milestone_id=mid), fay)
        reached = trio.Event()
        await h.start("payments", stuck("payments", CreatePaymentRequest, reached))
        h.nursery.start_soon(unanswered, h, "contracts.EvaluateMilestone",
                             EvaluateMilestone(milestone_id=mid, evaluated_state="ACCEPTED"), client)
        with trio.fail_after(10):
            await reached.wait()             # ACCEPTED is stored; the payment request is being asked for
        h.kill("contracts")
        h.kill("payments")
        await trio.sleep(DEADLINE)
        assert not payments.requests
        await h.start("payments")
        await h.start("contracts")
        await eventually(lambda: _has_request(payments, mid))
        req = payments.requests[mid]
        assert (req.contract_id, req.client_id, req.freelancer_id, str(req.amount)) == (cid, client.user_id, fay.user_id, "100.5")
        assert (await h.ok("contracts.GetMilestone", GetMilestone(milestone_id=mid), client))["status"] == "ACCEPTED"
        ms = await h.ok("contracts.GetContractMilestones", GetContractMilestones(contract_id=cid), fay)
        assert [m["status"] for m in ms] == ["ACCEPTED", "OPEN"]
        async with opened_store(settings, "contracts", TABLES, ContractsStore) as store:
            async def recorded() -> bool:
                m = await store.get_milestone(mid)
                return m.payment_request_id == payments.ids[mid] and not await store.outbox.pending(PAYMENT)
            await eventually(recorded)


async def _has_request(payments: FakePayments, mid: str) -> bool:
    return mid in payments.requests
