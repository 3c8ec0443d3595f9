"""One contract for every users store adapter (SQLite and MongoDB/FerretDB)."""

import datetime as dt

import msgspec
import pytest
import trio

from workup.messages import users as m
from workup.ids import new_id, now_ms, rfc3339
from workup.services.users.records import UserRecord, add_item, email_key
from workup.services.users.store import EmailTaken


def make_user(email: str, role: str = "CLIENT", **kw) -> UserRecord:
    return UserRecord(id=new_id(), email=email, email_key=email_key(email), password_hash="x",
                      role=role, name="N", created_at=rfc3339(now_ms()), **kw)


async def test_insert_get_and_find_by_email_any_case(store):
    user = make_user("Ann@Example.com", city="Cairo", birth_date=dt.date(1990, 1, 2), skills=["py"])
    await store.insert(user)
    got = await store.get(user.id)
    assert got == user
    assert got.birth_date == dt.date(1990, 1, 2)
    assert await store.find_by_email("ann@EXAMPLE.com") == user
    assert await store.get(new_id()) is None
    assert await store.find_by_email("nobody@example.com") is None


async def test_email_unique_across_roles_and_case(store):
    await store.insert(make_user("bob@example.com", "CLIENT"))
    with pytest.raises(EmailTaken):
        await store.insert(make_user("BOB@example.com", "FREELANCER"))
    with pytest.raises(EmailTaken):
        await store.insert(make_user("bob@example.com", "CLIENT"))


async def test_concurrent_inserts_of_one_email_admit_exactly_one(store):
    outcomes = []

    async def attempt(i):
        try:
            await store.insert(make_user(f"race{'@EXAMPLE.com' if i % 2 else '@example.com'}",
                                         "CLIENT" if i % 3 else "FREELANCER"))
            outcomes.append("ok")
        except EmailTaken:
            outcomes.append("taken")

    async with trio.open_nursery() as n:
        for i in range(8):
            n.start_soon(attempt, i)
    assert sorted(outcomes) == ["ok"] + ["taken"] * 7


async def test_save_is_compare_and_set(store):
    user = make_user("cas@example.com")
    await store.insert(user)
    a, b = await store.get(user.id), await store.get(user.id)
    a.city = "Giza"
    assert await store.save(a) is True
    assert a.version == 1
    b.city = "Lost update"
    assert await store.save(b) is False
    got = await store.get(user.id)
    assert (got.city, got.version) == ("Giza", 1)


async def test_save_to_a_taken_email_changes_nothing(store):
    first, second = make_user("one@example.com"), make_user("two@example.com", "FREELANCER")
    await store.insert(first)
    await store.insert(second)
    changed = msgspec.structs.replace(second, email="ONE@example.com", email_key="one@example.com", city="X")
    with pytest.raises(EmailTaken):
        await store.save(changed)
    got = await store.get(second.id)
    assert (got.email, got.city, got.version) == ("two@example.com", None, 0)
    # and a free email may be taken, after which the old one is free again
    moved = msgspec.structs.replace(got, email="Three@example.com", email_key="three@example.com")
    assert await store.save(moved)
    assert (await store.find_by_email("three@example.com")).id == second.id
    assert await store.find_by_email("two@example.com") is None
    await store.insert(make_user("two@example.com"))


async def test_items_round_trip(store):
    user = make_user("items@example.com", "FREELANCER")
    await store.insert(user)
    user, item = add_item(user, "education", m.AddEducation(school_name="MIT", end_date=dt.date(2020, 6, 1)))
    assert await store.save(user)
    got = await store.get(user.id)
    assert got.education == [item]
    assert got.education[0].end_date == dt.date(2020, 6, 1)


async def test_wallet_outbox_flag(store):
    pending, done = make_user("p@example.com", wallet_pending=True), make_user("d@example.com")
    await store.insert(pending)
    await store.insert(done)
    assert [u.id for u in await store.pending("wallet_pending", 10)] == [pending.id]
    assert await store.pending("revoke_pending", 10) == []
    # a profile save never resets the flag, whatever the saved record says
    stale = await store.get(pending.id)
    await store.clear_pending("wallet_pending", pending.id)
    stale.city = "Alex"
    assert await store.save(stale)
    assert await store.pending("wallet_pending", 10) == []
    assert (await store.get(pending.id)).wallet_pending is False
    # and setting it again on a save does not resurrect it either
    again = await store.get(pending.id)
    again.wallet_pending = True
    assert await store.save(again)
    assert await store.pending("wallet_pending", 10) == []


async def test_close_sets_the_revocation_outbox_flag_in_the_same_write(store):
    user = make_user("close@example.com", city="Kept")
    await store.insert(user)
    stale = await store.get(user.id)
    assert await store.close(user.id) == 1
    got = await store.get(user.id)
    assert (got.closed, got.revoke_pending, got.version, got.city) == (True, True, 1, "Kept")
    assert [u.id for u in await store.pending("revoke_pending", 10)] == [user.id]
    assert await store.save(stale) is False  # a write that read before the close loses
    await store.clear_pending("revoke_pending", user.id)
    assert await store.pending("revoke_pending", 10) == []
    assert (await store.get(user.id)).closed is True
    assert await store.close(new_id()) is None
    with pytest.raises(EmailTaken):  # the email stays taken
        await store.insert(make_user("CLOSE@example.com"))


async def test_resize_pool_keeps_serving(store):
    user = make_user("pool@example.com")
    await store.insert(user)
    assert store.pool_size() >= 1
    await store.resize_pool(3)
    assert store.pool_size() == 3
    async with trio.open_nursery() as n:
        for _ in range(6):
            n.start_soon(store.get, user.id)
    assert (await store.get(user.id)).id == user.id
    await store.resize_pool(1)
    assert store.pool_size() == 1
    assert (await store.get(user.id)).id == user.id


async def test_the_inbox_rows_travel_with_the_document(store):
    """The once-mechanism's rows (``workup/runtime/inbox.py``): saved with the document, added by
    the write that closes the account, found by ``first_answer``; ``recall`` costs no read."""
    from workup.runtime.inbox import OnceKey, Recorded
    user = make_user(f"inbox-{new_id()}@example.com", "FREELANCER")
    await store.insert(user)
    k1, k2 = (OnceKey("users.RemoveSkill", new_id(), "d", user.id) for _ in range(2))
    row1 = Recorded(k1.id, 204, "", now_ms() + 60_000)
    assert await store.save(msgspec.structs.replace(user, skills=[], inbox=[row1]))
    assert await store.first_answer(k1) == row1 and await store.first_answer(k2) is None
    assert await store.recall(k1) is None                 # found on the handler's own read instead
    row2 = Recorded(k2.id, 204, "", now_ms() + 60_000)
    assert await store.close(user.id, row2) is not None
    got = await store.get(user.id)
    assert got is not None and got.closed and got.inbox == [row1, row2]
    final = Recorded(k1.id, 200, '{"more":1}', row1.until_ms)
    await store.remember(k1, final)
    assert await store.first_answer(k1) == final and await store.first_answer(k2) == row2
