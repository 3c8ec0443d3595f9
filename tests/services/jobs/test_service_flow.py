"""The jobs and contracts services end to end over the in-process transport (handler level)."""

from __future__ import annotations

import trio

from workup.transport.envelope import Caller, SERVICE_CALLER
from workup.messages.contracts import (EvaluateMilestone, GetContract, GetContractMilestones,
    HasActiveContract, MarkMilestonePaid, ProgressMilestone)
from workup.messages.jobs import AcceptProposal, CreateJob, CreateProposal, GetJob, SearchJobs

from ._services import FakePayments, new_id, running

MILESTONES = [{"description": "design", "amount": 100.5, "dueDate": "2030-01-01"},
              {"description": "build", "amount": 200, "dueDate": "2030-02-01"}]


def proposal(job_id: str) -> CreateProposal:
    import msgspec
    return msgspec.convert({"jobId": job_id, "coverLetter": "me", "jobDuration": "LESS_THAN_A_MONTH",
                            "milestones": MILESTONES}, CreateProposal)


async def test_job_to_completed_contract(tmp_path):
    client, freelancer = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER")
    payments = FakePayments()
    async with running(tmp_path, payments=payments) as h:
        job = await h.ok("jobs.CreateJob", CreateJob(title="Rust dev", description="Write a parser",
                                                     skills=["Rust"]), client, 201)
        assert job["active"] and job["clientId"] == client.user_id
        found = await h.ok("jobs.SearchJobs", SearchJobs(query="rust PARSER"))
        assert [j["id"] for j in found["jobs"]] == [job["id"]] and found["pagingState"] is None
        p = await h.ok("jobs.CreateProposal", proposal(job["id"]), freelancer, 201)
        status, _ = await h.answer("jobs.CreateProposal", proposal(job["id"]), freelancer)
        assert status == 409
        acc = await h.ok("jobs.AcceptProposal", AcceptProposal(job_id=job["id"], proposal_id=p["id"]), client)
        again = await h.ok("jobs.AcceptProposal", AcceptProposal(job_id=job["id"], proposal_id=p["id"]), client)
        assert acc == again and acc["job"] == {"id": job["id"], "active": False}
        assert (await h.ok("jobs.GetJob", GetJob(job_id=job["id"]), client))["active"] is False
        assert (await h.ok("jobs.SearchJobs", SearchJobs(query="rust")))["jobs"] == []
        cid = acc["contractId"]
        c = await h.ok("contracts.GetContract", GetContract(contract_id=cid), freelancer)
        assert c["status"] == "ACTIVE" and c["proposalId"] == p["id"]
        for who in (client, freelancer):
            assert await h.ok("contracts.HasActiveContract", HasActiveContract(user_id=who.user_id), SERVICE_CALLER) == {"active": True}
        assert (await h.answer("contracts.HasActiveContract", HasActiveContract(user_id=client.user_id), client))[0] == 403
        ms = await h.ok("contracts.GetContractMilestones", GetContractMilestones(contract_id=cid), client)
        assert [m["description"] for m in ms] == ["design", "build"] and ms[0]["amount"] == 100.5
        for m in ms:
            for _ in range(2):
                await h.ok("contracts.ProgressMilestone", ProgressMilestone(milestone_id=m["id"]), freelancer)
            ev = await h.ok("contracts.EvaluateMilestone",
                            EvaluateMilestone(milestone_id=m["id"], evaluated_state="ACCEPTED"), client)
            assert ev["status"] == "ACCEPTED" and ev["paymentRequestId"] == payments.ids[m["id"]]
            await h.ok("contracts.MarkMilestonePaid",
                       MarkMilestonePaid(milestone_id=m["id"], payment_request_id=ev["paymentRequestId"]), SERVICE_CALLER)
        assert (await h.ok("contracts.GetContract", GetContract(contract_id=cid), client))["status"] == "COMPLETED"
        assert await h.ok("contracts.HasActiveContract", HasActiveContract(user_id=client.user_id), SERVICE_CALLER) == {"active": False}
        await trio.sleep(0.05)
        assert [e.recipients for e in h.events_of("contract.completed")] == [[client.user_id, freelancer.user_id]]
        assert len(h.events_of("proposal.accepted")) == 1


async def test_accept_while_contracts_is_down(tmp_path):
    """503 while contracts does not answer (nothing is lost: the claim and the intent are kept);
    the retry, once contracts is back, answers the contract, and there is only one."""
    client, freelancer = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER")
    async with running(tmp_path, ("jobs", "payments")) as h:
        job = await h.ok("jobs.CreateJob", CreateJob(title="t", description="d"), client, 201)
        p = await h.ok("jobs.CreateProposal", proposal(job["id"]), freelancer, 201)
        accept = AcceptProposal(job_id=job["id"], proposal_id=p["id"])
        status, body = await h.answer("jobs.AcceptProposal", accept, client)
        assert status == 503 and "retry" in body["detail"]
        assert (await h.ok("jobs.GetJob", GetJob(job_id=job["id"]), client))["active"] is False
        await h.start("contracts")
        first = await h.ok("jobs.AcceptProposal", accept, client)
        assert first == await h.ok("jobs.AcceptProposal", accept, client)
        c = await h.ok("contracts.GetContract", GetContract(contract_id=first["contractId"]), freelancer)
        assert c["proposalId"] == p["id"] and [m["amount"] for m in await h.ok(
            "contracts.GetContractMilestones", GetContractMilestones(contract_id=c["id"]), client)] == [100.5, 200]
