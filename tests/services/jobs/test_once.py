"""Exactly once without the client's help (``workup/runtime/inbox.py``) for ``UpdateProposal``,
which writes absolute values: a copy of a first update (same request id and body: a redelivery,
or a captured request re-published before its deadline) that arrives after a later update gets
the first answer and puts nothing back; embedded, and on RabbitMQ + Cassandra."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import msgspec

from workup.messages.jobs import CreateJob, CreateProposal, ProposalMilestone, UpdateProposal
from workup.transport.envelope import Caller

from ._http import User
from ._services import new_id


async def test_a_copy_of_an_update_after_a_later_one_puts_nothing_back(system):
    owner, fay = User("CLIENT"), User("FREELANCER")
    job = await system.job(owner)
    p = await system.proposal(fay, job["id"])
    me = Caller(fay.id, "FREELANCER")

    async def update(request_id: str, letter: str) -> tuple[int, dict]:
        reply = await system.services.call("jobs.UpdateProposal",
                                           UpdateProposal(proposal_id=p["id"], cover_letter=letter), me,
                                           request_id=request_id)
        return reply.status, msgspec.json.decode(reply.body)

    rid = new_id()
    first = await update(rid, "First")
    assert first[0] == 200 and first[1]["coverLetter"] == "First"
    assert await update(rid, "First") == first                     # a redelivery: the first answer
    later = await update(new_id(), "Later")
    assert later[0] == 200 and later[1]["coverLetter"] == "Later"
    assert await update(rid, "First") == first                     # the copy: still the first answer ...
    got = (await system.http.get(f"/api/v1/proposals/{p['id']}", headers=fay.auth)).json()
    assert got["coverLetter"] == "Later"                           # ... and the later update stays
    other = await update(rid, "Other body")                        # same id, another body: a new command
    assert other[0] == 200 and other[1]["coverLetter"] == "Other body"


async def test_a_redelivered_job_and_proposal_are_listed_once(system):
    """A CreateJob / CreateProposal delivered again after it was applied (the worker died before
    its ack) answers the same job / proposal and adds no second index row: GET /jobs/me, search
    and GET /jobs/me/proposals list each once (reliability finding 5's siblings)."""
    owner, fay = User("CLIENT"), User("FREELANCER")
    word = f"w{new_id()[:10]}"
    create = CreateJob(title=f"Redelivered {word}", description="Build an API")
    rid = new_id()
    first = await system.services.call("jobs.CreateJob", create, Caller(owner.id, "CLIENT"), request_id=rid)
    again = await system.services.call("jobs.CreateJob", create, Caller(owner.id, "CLIENT"), request_id=rid)
    assert first.status == again.status == 201 and first.body == again.body
    job_id = msgspec.json.decode(first.body)["id"]
    mine = (await system.http.get("/api/v1/jobs/me", headers=owner.auth)).json()
    assert [j["id"] for j in mine] == [job_id]
    found = (await system.http.get("/api/v1/jobs/search", params={"query": word}, headers=fay.auth)).json()
    assert [j["id"] for j in found["jobs"]] == [job_id]

    draft = CreateProposal(job_id=job_id, cover_letter="Hire me", job_duration="LESS_THAN_A_MONTH",
                           milestones=[ProposalMilestone(description="design", amount=Decimal("100.5"),
                                                         due_date=dt.date(2030, 1, 1))])
    rid = new_id()
    replies = [await system.services.call("jobs.CreateProposal", draft, Caller(fay.id, "FREELANCER"),
                                          request_id=rid) for _ in range(2)]
    assert [r.status for r in replies] == [201, 201]
    made = [msgspec.json.decode(r.body) for r in replies]
    assert made[0]["id"] == made[1]["id"] and made[0]["createdAt"] == made[1]["createdAt"]
    listed = (await system.http.get("/api/v1/jobs/me/proposals", headers=fay.auth)).json()
    assert [p["id"] for p in listed] == [made[0]["id"]]
