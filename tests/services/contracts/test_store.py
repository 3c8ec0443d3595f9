"""The contracts store contract, run against SQLite and Cassandra alike."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from types import SimpleNamespace

import msgspec
import pytest
import trio

from workup.cache import MemoryCache
from workup.messages.contracts import Contract, CreateContract, MilestoneSpec, contract_cache_key
from workup.services.contracts import contracts as contracts_module
from workup.services.contracts.contracts import FRESH_FILL_MS, create_contract
from workup.ids import now_ms
from workup.services.contracts.store import (CONTRACTS_BY_PARTY, TABLES, ContractsStore, StoredContract,
    StoredMilestone, StoredTermination, contract_id_for, milestone_id_for)
from workup.transport.envelope import SERVICE_CALLER
from tests.services.jobs._fixtures import KINDS, DiesBefore, store_of
from tests.services.jobs._services import new_id
from tests.storage._count import statements


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "contracts", TABLES, ContractsStore) as s:
        yield s


def contract(client: str, freelancer: str, ms: int, n: int = 2) -> tuple[StoredContract, list[StoredMilestone]]:
    cid = contract_id_for(new_id())
    milestones = [StoredMilestone(id=milestone_id_for(cid, i), contract_id=cid, position=i, description=f"m{i}",
                                  amount=Decimal("12.50") + i, due_date=dt.date(2030, 1, 1 + i), status="OPEN",
                                  updated_ms=ms) for i in range(n)]
    c = StoredContract(id=cid, job_id=new_id(), job_title="job", proposal_id=new_id(), client_id=client,
                       freelancer_id=freelancer, status="ACTIVE", milestone_ids=[m.id for m in milestones],
                       created_ms=ms, updated_ms=ms)
    return c, milestones


async def test_contracts(store):
    client, f1, f2 = new_id(), new_id(), new_id()
    (a, am), (b, bm) = contract(client, f1, 1000), contract(client, f2, 2000)
    await store.create_contract(a, am)
    await store.create_contract(b, bm)
    await store.create_contract(a, am)   # idempotent: the same rows
    assert await store.get_contract(a.id) == a and await store.get_contract(new_id()) is None
    assert [c.id for c in await store.contracts_of(client)] == [b.id, a.id]
    assert [c.id for c in await store.contracts_of(f1)] == [a.id]
    assert await store.move_contract(a.id, "COMPLETED", "ACTIVE", 3000)
    assert not await store.move_contract(a.id, "TERMINATED", "ACTIVE", 3000)
    assert (await store.get_contract(a.id)).status == "COMPLETED"
    assert not await store.move_contract(new_id(), "TERMINATED", "ACTIVE", 1)


async def test_milestones(store):
    c, ms = contract(new_id(), new_id(), 1000, n=12)
    await store.create_contract(c, ms)
    assert await store.milestones_of(c.id) == ms   # proposal order, even past 10
    m = ms[3]
    assert await store.get_milestone(m.id) == m and await store.get_milestone(new_id()) is None
    wins = []

    async def move(i: int) -> None:
        if await store.move_milestone(m, "IN_PROGRESS", 2000 + i):
            wins.append(i)
    async with trio.open_nursery() as n:
        for i in range(5):
            n.start_soon(move, i)
    assert len(wins) == 1
    moved = await store.get_milestone(m.id)
    assert moved.status == "IN_PROGRESS" and moved.updated_ms == 2000 + wins[0]
    await store.note_payment_request(moved, "pr1")
    assert (await store.get_milestone(m.id)).payment_request_id == "pr1"
    await store.create_contract(c, [StoredMilestone(**{**{f: getattr(m, f) for f in m.__struct_fields__}, "status": "OPEN"})])
    assert (await store.get_milestone(m.id)).status == "IN_PROGRESS"   # a retried create resets nothing
    assert await store.move_contract(c.id, "COMPLETED", "ACTIVE", 3000)
    await store.create_contract(c, ms)
    assert (await store.get_contract(c.id)).status == "COMPLETED"         # nor the contract


async def test_terminations(store):
    c, ms = contract(new_id(), new_id(), 1000)
    await store.create_contract(c, ms)
    t = StoredTermination(id=new_id(), contract_id=c.id, requester_id=c.client_id, reason="r", status="PENDING",
                          created_ms=5, updated_ms=5)
    assert await store.guard_termination(c.id, c.client_id, t.id, 5) == t.id
    assert await store.add_termination(t)
    assert await store.guard_termination(c.id, c.client_id, new_id(), 10**9) == t.id   # one PENDING per party
    other = new_id()
    assert await store.guard_termination(c.id, c.freelancer_id, other, 6) == other
    assert await store.get_termination(t.id) == t and await store.terminations_of(c.id) == [t]
    assert await store.move_termination(t, "REJECTED", "PENDING", 6)
    assert not await store.move_termination(t, "ACCEPTED", "PENDING", 7)
    await store.release_termination_guard(t)
    fresh = new_id()
    assert await store.guard_termination(c.id, c.client_id, fresh, 8) == fresh   # released: at once


# --- one listing per contract however often CreateContract ran (reliability finding 5) -------

class _ServiceCtx:
    caller = SERVICE_CALLER

    def __init__(self, store: ContractsStore) -> None:
        self.deps = SimpleNamespace(store=store, cache=MemoryCache())


def _create(client: str, freelancer: str, proposal_id: str, accepted_ms: int) -> CreateContract:
    spec = MilestoneSpec(description="design", amount=Decimal("10.25"), due_date=dt.date(2030, 1, 1))
    return CreateContract(proposal_id=proposal_id, job_id=new_id(), job_title="job", client_id=client,
                          freelancer_id=freelancer, milestones=[spec, spec], accepted_ms=accepted_ms)


async def test_an_attempt_killed_before_the_contract_row_then_retried_lists_the_contract_once(store, monkeypatch):
    client, fay = new_id(), new_id()
    req = _create(client, fay, new_id(), accepted_ms=1_700_000_000_000)
    dying = ContractsStore(DiesBefore(store.db, "contracts"))
    monkeypatch.setattr(contracts_module, "now_ms", lambda: 1_700_000_001_000)
    with pytest.raises(RuntimeError):
        await create_contract(_ServiceCtx(dying), req)
    cid = contract_id_for(req.proposal_id)
    assert await store.get_contract(cid) is None
    assert len(await store.db.select(CONTRACTS_BY_PARTY, {"user_id": client})) == 1   # the dead attempt's row
    monkeypatch.setattr(contracts_module, "now_ms", lambda: 1_700_000_009_000)   # the redelivery, later
    assert (await create_contract(_ServiceCtx(store), req)).id == cid
    assert (await create_contract(_ServiceCtx(store), req)).id == cid               # and once more: a no-op
    for party in (client, fay):
        rows = await store.db.select(CONTRACTS_BY_PARTY, {"user_id": party})
        assert [(r["created_ms"], r["contract_id"]) for r in rows] == [(req.accepted_ms, cid)]
        [listed] = await store.contracts_of(party)
        assert listed.id == cid and listed.created_ms == req.accepted_ms
    # newest first still holds with the acceptance's time
    second = _create(client, new_id(), new_id(), accepted_ms=req.accepted_ms + 5)
    await create_contract(_ServiceCtx(store), second)
    assert [c.id for c in await store.contracts_of(client)] == [contract_id_for(second.proposal_id), cid]


async def test_index_rows_left_by_attempts_of_other_times_are_not_listed(store, monkeypatch):
    """A CreateContract from a sender that does not say ``accepted_ms`` (attempts then differ in
    time), and rows such attempts left before the fix: the listing skips the rows whose time is
    not their contract's."""
    client, fay = new_id(), new_id()
    req = _create(client, fay, new_id(), accepted_ms=0)
    monkeypatch.setattr(contracts_module, "now_ms", lambda: 1_700_000_001_000)
    with pytest.raises(RuntimeError):
        await create_contract(_ServiceCtx(ContractsStore(DiesBefore(store.db, "contracts"))), req)
    monkeypatch.setattr(contracts_module, "now_ms", lambda: 1_700_000_002_000)
    cid = (await create_contract(_ServiceCtx(store), req)).id
    assert len(await store.db.select(CONTRACTS_BY_PARTY, {"user_id": client})) == 2
    assert [(c.id, c.created_ms) for c in await store.contracts_of(client)] == [(cid, 1_700_000_002_000)]
    assert [c.id for c in await store.contracts_of(fay)] == [cid]


# --- a milestone's location is kept once known (issue 15) ----------------------------------

async def test_a_known_milestone_is_read_by_one_statement(store):
    c, ms = contract(new_id(), new_id(), 1000, n=3)
    await store.create_contract(c, ms)
    with statements(store.db) as sent:
        assert await store.get_milestone(ms[1].id) == ms[1]           # written here: located
    assert len(sent) == 1 and "milestones_by_id" not in sent[0]
    fresh = ContractsStore(store.db)                                    # another worker process
    with statements(store.db) as sent:
        assert await fresh.get_milestone(ms[2].id) == ms[2]           # through the index, once
        assert await fresh.get_milestone(ms[2].id) == ms[2]
    assert len(sent) == 3
    assert await fresh.get_milestone(new_id()) is None                  # nothing kept for it
    with statements(store.db) as sent:
        assert await fresh.get_milestone(ms[2].id) == ms[2]
    assert len(sent) == 1
    assert len(fresh._locations) == 1


async def test_a_kept_location_whose_row_is_gone_asks_the_index(store):
    c, ms = contract(new_id(), new_id(), 1000, n=1)
    await store.create_contract(c, ms)
    store._locations[ms[0].id] = (contract_id_for(new_id()), 0)       # as if its row had gone
    assert await store.get_milestone(ms[0].id) == ms[0]
    assert store._locations[ms[0].id] == (c.id, 0)
    found = await store.milestone_among(ms[0].id)
    assert found is not None and found[0] == ms[0] and found[1] == ms


async def test_a_milestone_among_its_siblings_by_one_statement(store):
    c, ms = contract(new_id(), new_id(), 1000, n=3)
    await store.create_contract(c, ms)
    with statements(store.db) as sent:
        assert await store.milestone_among(ms[1].id) == (ms[1], ms)
    assert len(sent) == 1
    fresh = ContractsStore(store.db)
    assert await fresh.milestone_among(ms[2].id) == (ms[2], ms)       # unknown here: the index first
    assert await fresh.milestone_among(new_id()) is None


async def test_create_contract_with_the_acceptance_time_does_not_read_first(store):
    req = _create(new_id(), new_id(), new_id(), accepted_ms=1_700_000_000_000)
    with statements(store.db) as sent:
        cid = (await create_contract(_ServiceCtx(store), req)).id
    assert not any(s.lstrip().upper().startswith("SELECT") for s in sent)
    m = await store.get_milestone(milestone_id_for(cid, 0))
    assert await store.move_milestone(m, "IN_PROGRESS", 2000)
    assert (await create_contract(_ServiceCtx(store), req)).id == cid     # a repeat resets nothing
    assert (await store.get_milestone(m.id)).status == "IN_PROGRESS"
    assert (await store.get_contract(cid)).status == "ACTIVE"


async def test_a_milestone_and_its_contract(store):
    c, ms = contract(new_id(), new_id(), 1000, n=2)
    await store.create_contract(c, ms)
    with statements(store.db) as sent:
        assert await store.milestone_and_contract(ms[1].id) == (ms[1], c)   # located: both at once
    assert len(sent) == 2
    fresh = ContractsStore(store.db)
    assert await fresh.milestone_and_contract(ms[0].id) == (ms[0], c)       # through the index
    assert await fresh.milestone_and_contract(new_id()) is None
    fresh._locations[ms[1].id] = (contract_id_for(new_id()), 1)            # a wrong location
    assert await fresh.milestone_and_contract(ms[1].id) == (ms[1], c)


async def test_a_created_contract_is_in_the_cache_and_a_repeat_fills_nothing(store):
    """The parties' first read of a new contract (the flow's "get contract") needs no store read."""
    ctx = _ServiceCtx(store)
    req = _create(new_id(), new_id(), new_id(), accepted_ms=now_ms())    # accepted just now
    cid = (await create_contract(ctx, req)).id
    key = contract_cache_key(cid)
    with trio.fail_after(5):
        while (cached := await ctx.deps.cache.get(key)) is None:
            await trio.sleep(0.01)
    assert msgspec.json.decode(cached, type=Contract) == (await store.get_contract(cid)).public()
    await ctx.deps.cache.delete(key, version=10**15)
    await create_contract(ctx, req)                     # the contract existed: its row may have moved on
    await trio.sleep(0.1)
    assert await ctx.deps.cache.get(key) is None
    late = _create(new_id(), new_id(), new_id(), accepted_ms=now_ms() - FRESH_FILL_MS - 1)
    await create_contract(ctx, late)                    # too late to know nothing moved: no fill
    await trio.sleep(0.1)
    assert await ctx.deps.cache.get(contract_cache_key(contract_id_for(late.proposal_id))) is None
