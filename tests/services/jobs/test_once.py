"""Exactly once without the client's help (``workup/runtime/inbox.py``) for ``UpdateProposal``,
which writes absolute values: a copy of a first update (same request id and body: a redelivery,
or a captured request re-published before its deadline) that arrives after a later update gets
the first answer and puts nothing back; embedded, and on RabbitMQ + Cassandra."""

from __future__ import annotations

import msgspec

from workup.messages.jobs import UpdateProposal
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
