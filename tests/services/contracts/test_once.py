"""Exactly once without the client's help (``workup/runtime/inbox.py``): ``EvaluateMilestone`` and
``HandleTermination`` delivered twice with one request id (what the broker does when a worker died
after its commit and before its ack; distributed: published twice on the real RabbitMQ with the
same ``message_id``, on Cassandra) answer the first answer twice and apply once; another request
id with the same body is a new command, and so is the same id with another body."""

from __future__ import annotations

import msgspec
import trio

from workup.messages.contracts import EvaluateMilestone, HandleTermination, ProgressMilestone
from workup.transport.envelope import Caller
from tests.services.jobs._http import User
from tests.services.jobs._services import new_id

C = "/api/v1/contracts"


async def _send(system, request: msgspec.Struct, caller: Caller, request_id: str) -> tuple[int, object]:
    reply = await system.services.call(f"contracts.{type(request).__name__}", request, caller,
                                       request_id=request_id)
    return reply.status, msgspec.json.decode(reply.body) if reply.body else None


async def _in_review(system, fay: User, milestone_id: str) -> None:
    for _ in range(2):
        status, _ = await _send(system, ProgressMilestone(milestone_id=milestone_id),
                                Caller(fay.id, "FREELANCER"), new_id())
        assert status == 200


async def test_a_redelivered_evaluation_answers_its_first_answer_and_applies_once(system):
    client, fay, c = await system.contract()
    m1, m2 = c["milestoneIds"]
    me = Caller(client.id, "CLIENT")
    await _in_review(system, fay, m1)
    rid = new_id()
    accept = EvaluateMilestone(milestone_id=m1, evaluated_state="ACCEPTED")
    first = await _send(system, accept, me, rid)
    assert first[0] == 200 and first[1]["status"] == "ACCEPTED"
    assert first[1]["paymentRequestId"] == system.payments.ids[m1]
    assert await _send(system, accept, me, rid) == first            # the redelivery: the first answer
    status, problem = await _send(system, accept, me, new_id())     # a new command: the machine refuses
    assert status == 409 and "IN_REVIEW" in problem["detail"]
    got = (await system.http.get(f"{C}/milestones/{m1}", headers=client.auth)).json()
    assert got["status"] == "ACCEPTED"
    await trio.sleep(0.05)
    evaluated = [e for e in system.services.events_of("milestone.evaluated") if e.data["milestoneId"] == m1]
    assert len(evaluated) == 1                                      # announced once
    assert list(system.payments.requests) == [m1]

    # the same id with another body is another command (as payments' keyless inbox does)
    await _in_review(system, fay, m2)
    back = EvaluateMilestone(milestone_id=m2, evaluated_state="IN_PROGRESS")
    status, body = await _send(system, back, me, rid)
    assert status == 200 and body["status"] == "IN_PROGRESS" and body.get("paymentRequestId") is None
    assert await _send(system, back, me, rid) == (status, body)
    got = (await system.http.get(f"{C}/milestones/{m2}", headers=client.auth)).json()
    assert got["status"] == "IN_PROGRESS"


async def test_a_redelivered_termination_decision_answers_its_first_answer_and_applies_once(system):
    client, fay, c = await system.contract()
    cid, admin = c["id"], Caller(new_id(), "ADMIN")
    url = f"{C}/{cid}/terminations/request"
    t1 = (await system.http.post(url, json={"reason": "slow"}, headers=client.auth)).json()
    t2 = (await system.http.post(url, json={"reason": "agreed"}, headers=fay.auth)).json()

    reject, rid = HandleTermination(termination_id=t1["id"], chosen_status="REJECTED"), new_id()
    first = await _send(system, reject, admin, rid)
    assert first == (200, {**t1, "status": "REJECTED"})
    assert await _send(system, reject, admin, rid) == first
    assert (await _send(system, reject, admin, new_id()))[0] == 409   # a new command: not PENDING any more

    accept, rid = HandleTermination(termination_id=t2["id"], chosen_status="ACCEPTED"), new_id()
    first = await _send(system, accept, admin, rid)
    assert first == (200, {**t2, "status": "ACCEPTED"})
    assert await _send(system, accept, admin, rid) == first
    assert (await _send(system, accept, admin, new_id()))[0] == 409
    assert (await system.http.get(f"{C}/{cid}", headers=client.auth)).json()["status"] == "TERMINATED"
    await system.services.wait_for(lambda: system.payments.cancelled)
    await trio.sleep(0.05)
    assert system.payments.cancelled == [cid]                        # cancelled once
    terminated = [e for e in system.services.events_of("contract.terminated") if e.data["contractId"] == cid]
    assert len(terminated) == 1
