"""Exactly once without the client's help (``workup/runtime/inbox.py``): ``EvaluateMilestone`` and
``HandleTermination`` delivered twice with one request id (what the broker does when a worker died
after its commit and before its ack; distributed: published twice on the real RabbitMQ with the
same ``message_id``, on Cassandra) answer the first answer twice and apply once; another request
id with the same body is a new command, and so is the same id with another body. On Cassandra, an
evaluation whose worker is SIGKILLed right after its commit is answered by the redelivery."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import msgspec
import trio

from workup.messages.contracts import (CreateContract, EvaluateMilestone, GetContract, GetMilestone,
    GetMyContracts, HandleTermination, MilestoneSpec, ProgressMilestone)
from workup.services.contracts.store import payment_request_id_for
from workup.settings import Settings
from workup.testing import running_system
from workup.transport.envelope import SERVICE_CALLER, Caller, reply_body
from tests.services._dying import dying_child, read_line
from tests.services.jobs._http import User
from tests.services.jobs._services import FakePayments, new_id

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


async def test_a_progress_repeated_after_later_moves_answers_its_first_answer_and_moves_nothing(system):
    """The milestone row keeps the first answers of the commands that moved it (several of them):
    a repeat of the first progress after the second one and an evaluation back to IN_PROGRESS would
    otherwise move the milestone again (IN_PROGRESS → IN_REVIEW); it gets its own first answer."""
    client, fay, c = await system.contract()
    m1 = c["milestoneIds"][0]
    me, rid = Caller(fay.id, "FREELANCER"), new_id()
    first = await _send(system, ProgressMilestone(milestone_id=m1), me, rid)
    assert first[0] == 200 and first[1]["status"] == "IN_PROGRESS"
    second = await _send(system, ProgressMilestone(milestone_id=m1), me, new_id())
    assert second[0] == 200 and second[1]["status"] == "IN_REVIEW"
    back = await _send(system, EvaluateMilestone(milestone_id=m1, evaluated_state="IN_PROGRESS"),
                       Caller(client.id, "CLIENT"), new_id())
    assert back[0] == 200 and back[1]["status"] == "IN_PROGRESS"
    assert await _send(system, ProgressMilestone(milestone_id=m1), me, rid) == first
    assert await _send(system, ProgressMilestone(milestone_id=m1), me, rid) == first
    got = (await system.http.get(f"{C}/milestones/{m1}", headers=client.auth)).json()
    assert got["status"] == "IN_PROGRESS"                            # not moved by the repeats
    in_review = [e for e in system.services.events_of("milestone.in_review") if e.data["milestoneId"] == m1]
    assert len(in_review) == 1


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


CHILD = "tests.services.contracts._evaluate_then_die"   # run as a module from the repository root


async def test_an_evaluation_redelivered_after_a_kill_answers_once(amqp_url, cassandra_hosts, keyspace_prefix, tmp_path):
    """Cassandra: the worker is SIGKILLed after the milestone's move (which wrote its answer), before
    the payment request, the reply and the ack. The broker redelivers the command to a fresh
    instance, which answers the waiting caller the first answer (ACCEPTED, not 409); its relay
    then asks payments for the request and announces the evaluation, once each."""
    prefix = f"wtonce{uuid.uuid4().hex[:10]}"
    settings = Settings(data_dir=str(tmp_path), cassandra_hosts=cassandra_hosts,
                        cassandra_keyspace_prefix=keyspace_prefix, amqp_url=amqp_url)
    with dying_child(CHILD, cassandra_hosts, keyspace_prefix, amqp_url, prefix, str(tmp_path)) as child:
        assert await read_line(child.stdout, 60) == "ready"
        payments = FakePayments()
        async with running_system("distributed", [], fakes={"payments": payments.service}, settings=settings,
                                  prefix=prefix, gateway=False) as system:
            system.started.add("contracts")   # the child declared its queue: it goes at the end too
            client, fay = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER")
            spec = MilestoneSpec(description="design", amount=Decimal("100.5"), due_date=dt.date(2030, 1, 1))
            ref = reply_body(await system.call("contracts.CreateContract", CreateContract(
                proposal_id=new_id(), job_id=new_id(), job_title="t", client_id=client.user_id,
                freelancer_id=fay.user_id, milestones=[spec]), SERVICE_CALLER))
            contract = reply_body(await system.call("contracts.GetContract", GetContract(contract_id=ref["id"]), client))
            m1 = contract["milestoneIds"][0]
            for _ in range(2):
                reply_body(await system.call("contracts.ProgressMilestone", ProgressMilestone(milestone_id=m1), fay))
            answers: list[tuple[int, object]] = []

            async def first_call() -> None:   # waits through the kill for the redelivery's answer
                reply = await system.call("contracts.EvaluateMilestone",
                                          EvaluateMilestone(milestone_id=m1, evaluated_state="ACCEPTED"), client,
                                          timeout=90.0)
                answers.append((reply.status, msgspec.json.decode(reply.body)))
            async with trio.open_nursery() as n:
                n.start_soon(first_call)
                assert await read_line(child.stdout, 60) == "committed"
                assert await trio.to_thread.run_sync(child.wait) == -9
                await system.start("contracts")
            [(status, body)] = answers
            assert status == 200 and isinstance(body, dict) and body["status"] == "ACCEPTED", body
            # the first answer, recorded with the move before payments was asked: the request's id
            # is derived from the milestone's, and the relay opens the request under it
            assert body.get("paymentRequestId") == payment_request_id_for(m1)
            await system.wait_for(lambda: m1 in payments.requests and system.events_of("milestone.evaluated"),
                                  timeout=30)
            assert payments.ids[m1] == body["paymentRequestId"]
            got = reply_body(await system.call("contracts.GetMilestone", GetMilestone(milestone_id=m1), client))
            assert got["status"] == "ACCEPTED"
            await trio.sleep(0.5)
            assert len(system.events_of("milestone.evaluated")) == 1


CREATE_CHILD = "tests.services.contracts._create_then_die"


async def test_a_contract_created_again_after_a_kill_between_its_index_and_its_row_is_listed_once(
        amqp_url, cassandra_hosts, keyspace_prefix, tmp_path):
    """Cassandra: the worker is SIGKILLed after the ``contracts_by_party`` rows, before the
    contract row (reliability finding 5: the contract was then listed two or three times). The
    redelivery, on a fresh instance, writes the very same index rows: one listing per party,
    created at the acceptance's time."""
    prefix = f"wtidx{uuid.uuid4().hex[:10]}"
    settings = Settings(data_dir=str(tmp_path), cassandra_hosts=cassandra_hosts,
                        cassandra_keyspace_prefix=keyspace_prefix, amqp_url=amqp_url)
    with dying_child(CREATE_CHILD, cassandra_hosts, keyspace_prefix, amqp_url, prefix, str(tmp_path)) as child:
        assert await read_line(child.stdout, 60) == "ready"
        async with running_system("distributed", [], fakes={"payments": FakePayments().service}, settings=settings,
                                  prefix=prefix, gateway=False) as system:
            system.started.add("contracts")   # the child declared its queue: it goes at the end too
            client, fay = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER")
            spec = MilestoneSpec(description="design", amount=Decimal("100.5"), due_date=dt.date(2030, 1, 1))
            accepted_ms = 1_700_000_000_000
            req = CreateContract(proposal_id=new_id(), job_id=new_id(), job_title="t", client_id=client.user_id,
                                 freelancer_id=fay.user_id, milestones=[spec], accepted_ms=accepted_ms)
            answers: list[object] = []

            async def first_call() -> None:   # waits through the kill for the redelivery's answer
                answers.append(reply_body(await system.call("contracts.CreateContract", req, SERVICE_CALLER,
                                                            timeout=90.0)))
            async with trio.open_nursery() as n:
                n.start_soon(first_call)
                assert await read_line(child.stdout, 60) == "indexed"
                assert await trio.to_thread.run_sync(child.wait) == -9
                await system.start("contracts")
            [ref] = answers
            assert isinstance(ref, dict)
            for party in (client, fay):
                listed = reply_body(await system.call("contracts.GetMyContracts", GetMyContracts(), party))
                assert [c["id"] for c in listed] == [ref["id"]], listed
                assert listed[0]["createdAt"].startswith("2023-11-14T22:13:20")


def test_the_commands_answered_from_the_milestone_row_are_registered_once_commands():
    """``MilestoneInbox`` skips the inbox table for these names: each must be a ``once`` command
    of the service, or its repeats would look in the wrong place."""
    from workup.services.contracts import service
    from workup.services.contracts.store import IN_MILESTONE_ROW
    assert IN_MILESTONE_ROW == {"contracts.ProgressMilestone", "contracts.EvaluateMilestone"}
    assert all(service.commands[name].once for name in IN_MILESTONE_ROW)
