"""Pure pieces of the users service: passwords, record changes, message validation, cache keys."""

from __future__ import annotations

import datetime as dt

import msgspec
import pytest

from workup.ids import new_id, now_ms, rfc3339
from workup.messages import users as m
from workup.services.users import deps as _deps, passwords as _passwords
from workup.services.users.records import (MAX_ITEMS, MAX_TAGS, ListFull, UserRecord, add_item, add_to_set,
    apply_patch, email_key, remove_from_set, remove_item, update_item)


def user(**kw) -> UserRecord:
    return UserRecord(id=new_id(), email="A@B.co", email_key="a@b.co", password_hash="h", role="FREELANCER",
                      name="N", created_at=rfc3339(now_ms()), **kw)


def test_password_hashes_are_salted_scrypt_and_verify():
    h1, h2 = _passwords.hash_password("correct horse"), _passwords.hash_password("correct horse")
    assert h1 != h2 and h1.startswith("scrypt$32768$8$1$")      # n=2**15, r=8, p=1
    # a hash made with older (weaker) parameters still verifies: each hash names its own
    salt = b"0123456789abcdef"
    old = "$".join(["scrypt", "16384", "8", "1", _passwords._b64(salt),
                    _passwords._b64(_passwords._scrypt("correct horse", salt, 2**14, 8, 1))])
    assert _passwords.verify_password("correct horse", old) and not _passwords.verify_password("wrong", old)
    assert _passwords.verify_password("correct horse", h1)
    assert not _passwords.verify_password("correct horsE", h1)
    for broken in ("", "sha256$x", "scrypt$1$2$3", "scrypt$x$8$1$AAAA$BBBB", h1.replace("scrypt", "bcrypt")):
        assert not _passwords.verify_password("correct horse", broken)
    assert _passwords.verify_password("\ud800 lone surrogate ok", _passwords.hash_password("\ud800 lone surrogate ok"))


async def test_unknown_accounts_cost_one_hash_too(monkeypatch):
    seen = []
    real = _deps.verify_password
    monkeypatch.setattr(_deps, "verify_password", lambda pw, stored: seen.append(stored) or real(pw, stored))
    deps = _deps.UsersDeps(store=None, cache=None)
    assert await deps.verify("whatever-password", None) is False
    assert seen == [_passwords.DUMMY_HASH]
    # while a stored hash is checked for real
    assert await deps.verify("x", _passwords.hash_password("x")) is True


def test_apply_patch_only_touches_given_fields_and_rekeys_email():
    u = user(city="Cairo", job_title="Dev")
    new = apply_patch(u, m.SetFreelancerProfile(full_name="Fay", city=None, email="New@Mail.com"))
    assert (new.name, new.city, new.job_title, new.email, new.email_key) == ("Fay", None, "Dev", "New@Mail.com",
                                                                              "new@mail.com")
    assert (u.name, u.city) == ("N", "Cairo")  # the original is untouched
    assert apply_patch(u, m.SetFreelancerProfile()) == u


def test_item_changes():
    u = user()
    u1, item = add_item(u, "experience", m.AddExperience(company_name="Co", employment_start=dt.date(2020, 1, 1)))
    assert u1.experience == [item] and len(item.id) == 32 and u.experience == []
    u2, changed = update_item(u1, "experience", m.UpdateExperience(id=item.id, city="Giza"))
    assert changed == msgspec.structs.replace(item, city="Giza") and u2.experience == [changed]
    assert update_item(u1, "experience", m.UpdateExperience(id="nope", city="x")) is None
    assert remove_item(u2, "experience", "nope") is None
    assert remove_item(u2, "experience", item.id).experience == []


def test_lists_and_sets_are_bounded():
    u = user()
    for i in range(MAX_ITEMS):
        u, _ = add_item(u, "achievements", m.AddAchievement(achievement_name=f"a{i}"))
    with pytest.raises(ListFull):
        add_item(u, "achievements", m.AddAchievement(achievement_name="one too many"))
    for i in range(MAX_TAGS):
        u = add_to_set(u, "skills", f"s{i}")
    assert add_to_set(u, "skills", "s0") is None  # a present value is still fine
    with pytest.raises(ListFull):
        add_to_set(u, "skills", "one too many")


def test_set_changes():
    u = user()
    u1 = add_to_set(u, "skills", "py")
    assert u1.skills == ["py"] and add_to_set(u1, "skills", "py") is None
    assert remove_from_set(u1, "skills", "go") is None
    assert remove_from_set(u1, "skills", "py").skills == []


@pytest.mark.parametrize("email,ok", [
    ("a@b.co", True), ("first.last+tag@sub.example.org", True), ("no-at-sign", False), ("a@b", False),
    ("a b@c.de", False), ("a@@b.co", False), ("@b.co", False), ("a@b.co\x00", False), ("x" * 65 + "@b.co", False),
])
def test_email_syntax(email, ok):
    body = msgspec.json.encode({"email": email, "password": "password1", "clientName": "C"})
    if ok:
        assert msgspec.json.decode(body, type=m.RegisterClient).email == email
    else:
        with pytest.raises(msgspec.ValidationError, match="email"):
            msgspec.json.decode(body, type=m.RegisterClient)


def test_bodies_refuse_unknown_fields_nul_and_short_passwords():
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.json.decode(b'{"newSkill": "a", "x": 1}', type=m.AddSkill)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"newSkill": "a\\u0000b"}', type=m.AddSkill)
    with pytest.raises(msgspec.ValidationError, match="password"):
        msgspec.json.decode(b'{"email": "a@b.co", "password": "1234567", "fullName": "F"}', type=m.RegisterFreelancer)
    assert msgspec.json.decode(b'{"email": "x", "password": "1"}', type=m.Login).password == "1"


def test_cache_keys():
    assert m.user_cache_key(m.CACHED_ME, "u1") == "workup:users:me:u1"
    assert {m.user_cache_key(e, "u1") for e in m.CACHED_VIEWS} == {
        "workup:users:me:u1", "workup:users:client_profile:u1", "workup:users:freelancer_profile:u1",
        "workup:users:freelancer_public:u1"}
    with pytest.raises(ValueError):
        m.user_cache_key("closed", "u1")   # not a cached view: that flag has its own key
    assert email_key("  MiXed@Example.COM ") == "mixed@example.com"
