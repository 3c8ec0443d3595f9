"""The users service's commands over the in-process transport, with fake peers."""

from __future__ import annotations

import time
from decimal import Decimal

import msgspec
import pytest

from workup.cache import closed_account_key, open_cache
from workup.transport.envelope import Caller, reply_body
from workup.messages import users as m
from workup.settings import Settings
from workup.testing import System, running_system

from ._fakes import FakeContracts, FakePayments

ANON = Caller(None, None)


class Harness:
    """The users service's commands by request struct (``System.hook``), with the fake peers."""

    def __init__(self, system: System, payments: FakePayments | None, contracts: FakeContracts | None) -> None:
        self.system, self.settings = system, system.settings
        self.payments, self.contracts = payments, contracts
        users = system.hook("users", timeout=10)
        self.call, self.ok = users.call, users.ok

    async def register(self, role="CLIENT", email=None, password="password1"):
        email = email or f"{role.lower()}-{time.monotonic_ns()}@example.com"
        req = (m.RegisterClient(email=email, password=password, client_name="Acme") if role == "CLIENT"
               else m.RegisterFreelancer(email=email, password=password, full_name="Fay"))
        body = await self.ok(req, status=201)
        return Caller(body["userId"], role)


@pytest.fixture
async def h(tmp_path):
    settings = Settings(data_dir=str(tmp_path), admin_email="root@example.com", admin_password="rootpass1")
    payments, contracts = FakePayments(), FakeContracts()
    async with running_system("embedded", ["users"], fakes={"payments": payments.service, "contracts": contracts.service},
                              settings=settings, gateway=False, concurrency=16, grace=2) as system:
        yield Harness(system, payments, contracts)


async def test_register_login_me_and_wallet(h):
    body = await h.ok(m.RegisterClient(email="Ann@Example.com", password="password1", client_name="Ann Co",
                                       city="Cairo"), status=201)
    assert body["userType"] == "CLIENT" and len(body["userId"]) == 32
    assert h.payments.wallets_for(body["userId"]) == 1
    assert (await h.ok(m.Login(email="ann@example.COM", password="password1"))) == body
    me = await h.ok(m.GetMe(), Caller(body["userId"], "CLIENT"))
    assert me == {"userId": body["userId"], "email": "Ann@Example.com", "userType": "CLIENT", "name": "Ann Co"}


async def test_login_failures_are_identical(h):
    await h.register(email="bob@example.com")
    wrong = await h.call(m.Login(email="bob@example.com", password="wrongpass"))
    unknown = await h.call(m.Login(email="nobody@example.com", password="wrongpass"))
    assert wrong.status == unknown.status == 401
    assert wrong.body == unknown.body


async def test_duplicate_email_across_roles_and_case(h):
    await h.register("CLIENT", email="dup@example.com")
    again = await h.call(m.RegisterFreelancer(email="DUP@example.com", password="password1", full_name="X"))
    assert again.status == 409


async def test_admin_is_ensured(h):
    body = await h.ok(m.Login(email="root@example.com", password="rootpass1"))
    assert body["userType"] == "ADMIN"
    me = await h.ok(m.GetMe(), Caller(body["userId"], "ADMIN"))
    assert me["userType"] == "ADMIN"


async def test_roles_are_checked_by_the_service_too(h):
    client = await h.register("CLIENT")
    assert (await h.call(m.GetFreelancerProfile(), client)).status == 403
    assert (await h.call(m.GetClientProfile(), ANON)).status == 401
    ghost = Caller("f" * 32, "CLIENT")
    assert (await h.call(m.GetClientProfile(), ghost)).status == 401


async def test_client_profile_partial_update_and_email_conflict(h):
    client = await h.register("CLIENT", email="c1@example.com")
    await h.register("FREELANCER", email="f1@example.com")
    got = await h.ok(m.SetClientProfile(city="Giza", employee_count=5), client)
    assert got["city"] == "Giza" and got["employeeCount"] == 5 and got["name"] == "Acme"
    assert (await h.call(m.SetClientProfile(email="F1@example.com"), client)).status == 409
    got = await h.ok(m.SetClientProfile(email="New@example.com", city=None), client)
    assert got["email"] == "New@example.com" and got["city"] is None
    assert (await h.ok(m.Login(email="new@example.com", password="password1")))["userId"] == client.user_id
    assert (await h.call(m.Login(email="c1@example.com", password="password1"))).status == 401
    assert await h.ok(m.SetClientPhoto(photo_link="http://x/p.png"), client) == {"photoLink": "http://x/p.png"}
    assert (await h.ok(m.GetClientProfile(), client))["photoLink"] == "http://x/p.png"


async def test_freelancer_lists_with_ids_and_ownership(h):
    fay, other = await h.register("FREELANCER"), await h.register("FREELANCER")
    assert await h.ok(m.ListAchievements(), fay) == []
    item = await h.ok(m.AddAchievement(achievement_name="Prize", award_date="2020-01-02"), fay, status=201)
    assert item["awardDate"] == "2020-01-02" and item["awardedBy"] is None
    assert await h.ok(m.ListAchievements(), fay) == [item]
    # another freelancer can neither change nor delete it
    assert (await h.call(m.UpdateAchievement(id=item["id"], awarded_by="Me"), other)).status == 404
    assert (await h.call(m.RemoveAchievement(achievement_id=item["id"]), other)).status == 404
    updated = await h.ok(m.UpdateAchievement(id=item["id"], awarded_by="ACM"), fay)
    assert updated == {**item, "awardedBy": "ACM"}
    assert (await h.call(m.RemoveAchievement(achievement_id=item["id"]), fay)).status == 204
    assert (await h.call(m.RemoveAchievement(achievement_id=item["id"]), fay)).status == 404
    assert await h.ok(m.ListAchievements(), fay) == []


async def test_skills_are_a_set(h):
    fay = await h.register("FREELANCER")
    for _ in range(2):
        assert await h.ok(m.AddSkill(new_skill="python"), fay, status=201) == "python"
    await h.ok(m.AddSkill(new_skill="trio"), fay, status=201)
    assert await h.ok(m.ListSkills(), fay) == ["python", "trio"]
    assert (await h.call(m.RemoveSkill(skill_to_remove="python"), fay)).status == 204
    assert (await h.call(m.RemoveSkill(skill_to_remove="python"), fay)).status == 404
    profile = await h.ok(m.GetFreelancerProfile(), fay)
    assert profile["skills"] == ["trio"] and profile["languages"] == []
    public = await h.ok(m.GetPublicFreelancer(freelancer_id=fay.user_id), fay)
    assert public["id"] == fay.user_id and public["skills"] == ["trio"]
    client = await h.register("CLIENT")
    assert (await h.call(m.GetPublicFreelancer(freelancer_id=client.user_id), fay)).status == 404


async def test_reads_fill_the_cache_and_writes_invalidate_it(h):
    cache = open_cache(h.settings)
    fay = await h.register("FREELANCER")
    key = m.user_cache_key("freelancer_profile", fay.user_id)
    profile = await h.ok(m.GetFreelancerProfile(), fay)
    assert msgspec.json.decode(await cache.get(key)) == profile
    await h.ok(m.SetFreelancerProfile(city="Aswan"), fay)
    assert await cache.get(key) is None
    assert (await h.ok(m.GetFreelancerProfile(), fay))["city"] == "Aswan"
    assert msgspec.json.decode(await cache.get(key))["city"] == "Aswan"


async def test_delete_me_checks_password_contracts_and_balance(h):
    client = await h.register("CLIENT", email="leaver@example.com")
    assert (await h.call(m.DeleteMe(password="wrongpass"), client)).status == 401
    h.contracts.active.add(client.user_id)
    assert (await h.call(m.DeleteMe(password="password1"), client)).status == 409
    h.contracts.active.clear()
    h.payments.balances[client.user_id] = Decimal("0.01")
    assert (await h.call(m.DeleteMe(password="password1"), client)).status == 409
    assert client.user_id not in h.payments.closed
    h.payments.balances[client.user_id] = Decimal("0")
    assert (await h.call(m.DeleteMe(password="password1"), client)).status == 204
    assert client.user_id in h.payments.closed
    assert await open_cache(h.settings).get_flag(closed_account_key(client.user_id)) is not None
    assert (await h.call(m.GetMe(), client)).status == 401
    assert (await h.call(m.Login(email="leaver@example.com", password="password1"))).status == 401
    again = await h.call(m.RegisterFreelancer(email="leaver@example.com", password="password1", full_name="X"))
    assert again.status == 409


async def test_delete_me_is_503_when_a_peer_does_not_answer(tmp_path):
    settings = Settings(data_dir=str(tmp_path))
    async with running_system("embedded", ["users"], settings=settings, gateway=False,  # no payments, no contracts
                              concurrency=16, grace=2) as system:
        h = Harness(system, None, None)
        client = await h.register("CLIENT")
        reply = await h.call(m.DeleteMe(password="password1"), client)
        assert reply.status == 503
        assert (await h.call(m.GetMe(), client)).status == 200


async def test_redelivered_commands_do_not_create_twice(h):
    """A command redelivered after a worker died before acking carries the same request id."""
    reg = m.RegisterFreelancer(email="again@example.com", password="password1", full_name="F")
    first = await h.call(reg, request_id="rid-register-1")
    again = await h.call(reg, request_id="rid-register-1")
    assert first.status == again.status == 201 and first.body == again.body
    # the same request id does not let anyone else in: the password must match, like a login
    thief = m.RegisterFreelancer(email="again@example.com", password="password2", full_name="F")
    assert (await h.call(thief, request_id="rid-register-1")).status == 409
    other_role = m.RegisterClient(email="again@example.com", password="password1", client_name="C")
    assert (await h.call(other_role, request_id="rid-register-1")).status == 409
    assert (await h.call(reg, request_id="rid-register-2")).status == 409

    fay = Caller(reply_body(first)["userId"], "FREELANCER")
    add = m.AddEducation(school_name="MIT")
    one = await h.call(add, fay, request_id="rid-add-1")
    two = await h.call(add, fay, request_id="rid-add-1")
    assert one.status == two.status == 201 and one.body == two.body
    await h.ok(add, fay, status=201)  # a new request adds a new item
    assert len(await h.ok(m.ListEducation(), fay)) == 2
