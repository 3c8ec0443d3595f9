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
from workup.services.users.mongo import MongoUserStore
from workup.settings import Settings
from workup.testing import System, running_system
from workup.transport.envelope import Caller

from tests.services._dying import dying_child, read_line

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


async def _copies(system: System, request: msgspec.Struct, caller: Caller, n: int) -> list[tuple[int, object]]:
    """``n`` copies of one command (one request id) delivered at once."""
    rid, answers = uuid.uuid4().hex, []

    async def deliver() -> None:
        answers.append(await _send(system, request, caller, rid))
    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(deliver)
    return answers


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
    assert await _copies(users, m.RemoveSkill(skill_to_remove="b"), fay, 3) == [(204, None)] * 3
    assert await _ok(users, m.ListSkills(), fay) == ["a", "c"]


async def test_a_redelivered_delete_me_answers_204_again(users):
    fay = await _freelancer(users)
    rid, bye = uuid.uuid4().hex, m.DeleteMe(password="password1")
    assert await _send(users, bye, fay, rid) == (204, None)
    assert await _send(users, bye, fay, rid) == (204, None)            # not 401: its own effect
    assert (await _send(users, bye, fay, uuid.uuid4().hex))[0] == 401   # a new command: the account is closed
    assert (await _send(users, m.DeleteMe(password="other-pass1"), fay, rid))[0] == 401   # another body too
    assert (await _send(users, m.GetMe(), fay, uuid.uuid4().hex))[0] == 401


async def test_a_copy_after_a_later_change_puts_nothing_back(users):
    """What a captured request re-published before its deadline would do to absolute values:
    the copy answers the first answer and the later change stays."""
    fay = await _freelancer(users)
    rid, first_city = uuid.uuid4().hex, m.SetFreelancerProfile(city="Cairo")
    status, profile = await _send(users, first_city, fay, rid)
    assert status == 200 and isinstance(profile, dict) and profile["city"] == "Cairo"
    await _ok(users, m.SetFreelancerProfile(city="Giza"), fay)
    assert await _send(users, first_city, fay, rid) == (200, profile)     # the first answer ...
    got = await _ok(users, m.GetFreelancerProfile(), fay)
    assert isinstance(got, dict) and got["city"] == "Giza"                # ... and nothing put back

    rid, add = uuid.uuid4().hex, m.AddSkill(new_skill="rust")
    assert await _send(users, add, fay, rid) == (201, "rust")
    await _ok(users, m.RemoveSkill(skill_to_remove="rust"), fay)
    assert await _send(users, add, fay, rid) == (201, "rust")
    assert await _ok(users, m.ListSkills(), fay) == []


async def test_two_copies_of_delete_me_at_once_both_answer_204(users):
    fay = await _freelancer(users)
    assert await _copies(users, m.DeleteMe(password="password1"), fay, 2) == [(204, None)] * 2
    assert (await _send(users, m.GetMe(), fay, uuid.uuid4().hex))[0] == 401


CHILD = "tests.services.users._remove_then_die"   # run as a module from the repository root


async def test_a_removal_redelivered_after_a_kill_answers_once(amqp_url, mongo_url, tmp_path):
    """The worker is SIGKILLed after the removal's save, before its reply and ack: the broker
    redelivers the command to a fresh instance, which answers the waiting caller 204 (not 404)."""
    prefix, url = f"wtonce{uuid.uuid4().hex[:10]}", f"{mongo_url.rstrip('/')}/workup_once_{uuid.uuid4().hex[:10]}"
    settings = Settings(data_dir=str(tmp_path), users_mongo_url=url, amqp_url=amqp_url)
    try:
        with dying_child(CHILD, url, amqp_url, prefix, str(tmp_path)) as child:
            assert await read_line(child.stdout) == "ready"
            payments, contracts = FakePayments(), FakeContracts()
            async with running_system("distributed", [], fakes={"payments": payments.service,
                                                                 "contracts": contracts.service},
                                      settings=settings, prefix=prefix, gateway=False) as system:
                system.started.add("users")     # the child declared its queue: it goes at the end too
                fay = await _freelancer(system)
                for skill in ("python", "go"):
                    await _ok(system, m.AddSkill(new_skill=skill), fay)
                answers: list[tuple[int, object]] = []

                async def first_call() -> None:   # waits through the kill for the redelivery's answer
                    reply = await system.call("users.RemoveSkill", m.RemoveSkill(skill_to_remove="python"), fay,
                                              timeout=60.0)
                    answers.append((reply.status, reply.body))
                async with trio.open_nursery() as n:
                    n.start_soon(first_call)
                    assert await read_line(child.stdout) == "committed"
                    assert await trio.to_thread.run_sync(child.wait) == -9
                    await system.start("users")
                assert answers == [(204, b"")]
                assert await _ok(system, m.ListSkills(), fay) == ["go"]
    finally:
        store = await MongoUserStore.open(url)
        await store.drop()
        await store.aclose()
