"""Exactly once without the client's help (``workup/runtime/inbox.py``): removing an item, a skill
or a language and ``DeleteMe``, delivered twice with one request id (what the broker does when a
worker died after its commit and before its ack; distributed: published twice on the real
RabbitMQ with the same ``message_id``, on FerretDB), answer the first answer twice and apply once;
another request id is a new command, and so is the same id with another body. Two deliveries of
one command at once: one applies, both answer the same."""

from __future__ import annotations

import time
import uuid

import msgspec
import pytest
import trio

from workup.messages import users as m
from workup.testing import System, running_system
from workup.transport.envelope import Caller

from ._fakes import FakeContracts, FakePayments


@pytest.fixture(params=["embedded", "distributed"])
async def users(request):
    payments, contracts = FakePayments(), FakeContracts()
    async with running_system(request.param, ["users"], fakes={"payments": payments.service,
                                                               "contracts": contracts.service},
                              gateway=False) as system:
        yield system


async def _send(system: System, request: msgspec.Struct, caller: Caller | None, request_id: str) -> tuple[int, object]:
    reply = await system.call(f"users.{type(request).__name__}", request, caller, request_id=request_id)
    return reply.status, msgspec.json.decode(reply.body) if reply.body else None


async def _freelancer(system: System) -> Caller:
    email = f"once-{time.monotonic_ns()}@example.com"
    status, body = await _send(system, m.RegisterFreelancer(email=email, password="password1", full_name="Fay"),
                               None, uuid.uuid4().hex)
    assert status == 201, body
    assert isinstance(body, dict)
    return Caller(body["userId"], "FREELANCER")


async def _ok(system: System, request: msgspec.Struct, caller: Caller) -> object:
    status, body = await _send(system, request, caller, uuid.uuid4().hex)
    assert status < 300, body
    return body


async def test_a_redelivered_removal_answers_204_again_and_removes_once(users):
    fay = await _freelancer(users)
    for skill in ("python", "go"):
        await _ok(users, m.AddSkill(new_skill=skill), fay)
    rid = uuid.uuid4().hex
    assert await _send(users, m.RemoveSkill(skill_to_remove="python"), fay, rid) == (204, None)
    assert await _send(users, m.RemoveSkill(skill_to_remove="python"), fay, rid) == (204, None)   # not 404
    assert await _ok(users, m.ListSkills(), fay) == ["go"]
    status, problem = await _send(users, m.RemoveSkill(skill_to_remove="python"), fay, uuid.uuid4().hex)
    assert status == 404 and isinstance(problem, dict) and problem["status"] == 404   # a new command
    # the same request id with another body is another command: it applies
    assert await _send(users, m.RemoveSkill(skill_to_remove="go"), fay, rid) == (204, None)
    assert await _ok(users, m.ListSkills(), fay) == []

    await _ok(users, m.AddLanguage(new_language="Arabic"), fay)
    rid = uuid.uuid4().hex
    for _ in range(2):
        assert await _send(users, m.RemoveLanguage(language_to_remove="Arabic"), fay, rid) == (204, None)
    assert await _ok(users, m.ListLanguages(), fay) == []

    kept = await _ok(users, m.AddExperience(company_name="Acme", job_title="dev"), fay)
    gone = await _ok(users, m.AddExperience(company_name="Initech", job_title="dev"), fay)
    assert isinstance(kept, dict) and isinstance(gone, dict)
    rid = uuid.uuid4().hex
    for _ in range(2):
        assert await _send(users, m.RemoveExperience(experience_id=gone["id"]), fay, rid) == (204, None)
    assert await _ok(users, m.ListExperience(), fay) == [kept]


async def test_two_deliveries_at_once_apply_one_removal(users):
    fay = await _freelancer(users)
    for skill in ("a", "b", "c"):
        await _ok(users, m.AddSkill(new_skill=skill), fay)
    rid, answers = uuid.uuid4().hex, []

    async def deliver() -> None:
        answers.append(await _send(users, m.RemoveSkill(skill_to_remove="b"), fay, rid))
    async with trio.open_nursery() as n:
        for _ in range(3):
            n.start_soon(deliver)
    assert answers == [(204, None)] * 3
    assert await _ok(users, m.ListSkills(), fay) == ["a", "c"]


async def test_a_redelivered_delete_me_answers_204_again(users):
    fay = await _freelancer(users)
    rid, bye = uuid.uuid4().hex, m.DeleteMe(password="password1")
    assert await _send(users, bye, fay, rid) == (204, None)
    assert await _send(users, bye, fay, rid) == (204, None)            # not 401: its own effect
    assert (await _send(users, bye, fay, uuid.uuid4().hex))[0] == 401   # a new command: the account is closed
    assert (await _send(users, m.DeleteMe(password="other-pass1"), fay, rid))[0] == 401   # another body too
    assert (await _send(users, m.GetMe(), fay, uuid.uuid4().hex))[0] == 401
