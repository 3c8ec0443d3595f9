"""The jobs store contract, run against SQLite and Cassandra alike."""

from __future__ import annotations

from decimal import Decimal

import msgspec
import pytest
import trio

from workup.messages.jobs import ProposalMilestone
from workup.storage import CassandraDb
from workup.storage.slots import GRACE_MS
from workup.services.jobs.jobs import search_page
from workup.services.jobs.store import TABLES, JobsStore, StoredJob, StoredProposal

from ._fixtures import KINDS, DiesBefore, store_of
from ._services import new_id
from tests.storage._count import statements


@pytest.fixture(params=KINDS)
async def store(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "jobs", TABLES, JobsStore) as s:
        yield s


def job(client: str, ms: int, **kw) -> StoredJob:
    return StoredJob(id=new_id(), client_id=client, title="t", description="d", created_ms=ms, updated_ms=ms,
                     budget=Decimal("10.25"), skills=["a b"], **kw)


def proposal(job_id: str, freelancer: str, ms: int) -> StoredProposal:
    m = ProposalMilestone(description="x", amount=Decimal("1.10"), due_date=msgspec.convert("2030-01-02", type=__import__("datetime").date))
    return StoredProposal(id=new_id(), job_id=job_id, freelancer_id=freelancer, cover_letter="c",
                          job_duration="LESS_THAN_A_MONTH", status="PENDING", milestones=[m], attachments=[],
                          created_ms=ms, updated_ms=ms)


async def test_jobs_by_id_and_client(store):
    client = new_id()
    a, b = job(client, 1000), job(client, 2000)
    assert await store.create_job(a, ["*"]) and await store.create_job(b, ["*"])
    assert not await store.create_job(a, ["*"])   # a retry keeps the first
    assert await store.get_job(a.id) == a and await store.get_job(new_id()) is None
    assert [j.id for j in await store.jobs_of_client(client)] == [b.id, a.id]
    assert await store.jobs_of_client(new_id()) == []


async def test_index_scan_pages_newest_first(store):
    term, other = f"w{new_id()[:8]}", f"v{new_id()[:8]}"
    jobs = [job(new_id(), 1000 + i) for i in range(7)]
    for i, j in enumerate(jobs):
        await store.create_job(j, [term] + ([other] if i % 2 else []))
    first = await store.scan_index(term, None, 3)
    assert first == [(j.created_ms, j.id) for j in reversed(jobs)][:3]
    rest = await store.scan_index(term, first[-1], 10)
    assert [k[1] for k in first + rest] == [j.id for j in reversed(jobs)]
    assert await store.having_term(other, first + rest) == [k for k in first + rest if k[1] in {j.id for j in jobs[1::2]}]
    if isinstance(store.db, CassandraDb):   # every page of a result, not only the first
        store.db.fetch_size = 2
    assert await store.scan_index(term, None, 100) == first + rest
    store.unindex_job(jobs[6], [term])                  # gathered with the deletes of its moment...
    assert store.later.pending() == 1
    async with trio.open_nursery() as nursery:          # ...sent by the loop the relay runs
        nursery.start_soon(store.later.run)
        with trio.fail_after(5):
            while (await store.scan_index(term, None, 1))[0][1] != jobs[5].id:
                await trio.sleep(0.05)
        nursery.cancel_scope.cancel()
    assert store.later.pending() == 0


async def test_claim_job_once_even_concurrently(store):
    j = job(new_id(), 5000)
    await store.create_job(j, ["*"])
    wins = []

    async def claim(pid: str) -> None:
        if await store.claim_job(j.id, pid, 6000):
            wins.append(pid)
    async with trio.open_nursery() as n:
        for i in range(6):
            n.start_soon(claim, f"p{i}")
    assert len(wins) == 1
    got = await store.get_job(j.id)
    assert got.accepted_proposal_id == wins[0] and got.active is False
    await store.record_contract(got, "c1")
    assert (await store.get_job(j.id)).contract_id == "c1"
    assert not await store.claim_job(new_id(), "p", 1)   # no such job


async def test_proposals(store):
    j, f = job(new_id(), 7000), new_id()
    await store.create_job(j, ["*"])
    p = proposal(j.id, f, 7100)
    assert await store.guard_proposal(j.id, f, p.id, 7100) == p.id
    await store.add_proposal(p)
    await store.add_proposal(p)   # a redelivery: the same rows, once
    assert [x.id for x in await store.proposals_of_job(j.id)] == [p.id]
    assert await store.guard_proposal(j.id, f, new_id(), 7100 + GRACE_MS + 1) == p.id   # one per freelancer and job
    assert await store.get_proposal(p.id) == p
    q = proposal(j.id, new_id(), 7200)
    await store.add_proposal(q)
    assert [x.id for x in await store.proposals_of_job(j.id)] == [p.id, q.id]
    assert [x.id for x in await store.proposals_of_freelancer(f)] == [p.id]
    changed = msgspec.structs.replace(p, cover_letter="new", updated_ms=7300)
    assert await store.update_pending_proposal(changed)
    assert (await store.get_proposal(p.id)).cover_letter == "new"
    assert await store.decide_proposal(j.id, p.id, "ACCEPTED", 7400)
    assert not await store.decide_proposal(j.id, p.id, "REJECTED", 7500)
    assert not await store.update_pending_proposal(changed)
    assert (await store.get_proposal(p.id)).status == "ACCEPTED"


async def test_slot_taken_over_only_when_its_proposal_never_landed(store):
    j, f = new_id(), new_id()
    assert await store.guard_proposal(j, f, "ghost", 1000) == "ghost"   # the creator died here...
    assert await store.guard_proposal(j, f, new_id(), 1000 + GRACE_MS - 1) == "ghost"   # ...or is still writing
    fresh = new_id()
    assert await store.guard_proposal(j, f, fresh, 1000 + GRACE_MS + 1) == fresh
    assert await store.guard_proposal(j, f, fresh, 1000 + GRACE_MS + 2) == fresh   # a redelivery keeps it


async def test_racing_slot_claims_have_one_winner(store):
    j, f = new_id(), new_id()
    mine = [new_id() for _ in range(6)]
    got: list[str] = []

    async def claim(pid: str) -> None:
        got.append(await store.guard_proposal(j, f, pid, 5000))
    async with trio.open_nursery() as n:
        for pid in mine:
            n.start_soon(claim, pid)
    assert len(set(got)) == 1 and got[0] in mine


async def test_outbox(store):
    kind = f"k{new_id()[:6]}"
    await store.outbox.add(kind, "b", 2)
    await store.outbox.add(kind, "a", 1)
    assert await store.outbox.pending(kind) == [("a", 1), ("b", 2)]
    await store.outbox.done(kind, "a")
    assert await store.outbox.pending(kind) == [("b", 2)]


async def test_search_page_filters_across_batches(store):
    """Every word must match and inactive jobs are skipped, however sparse the matches: pages
    walk the driving word's partition in growing batches, without repeats or gaps."""
    a, b = f"a{new_id()[:8]}", f"b{new_id()[:8]}"
    jobs = [job(new_id(), 10_000 + i) for i in range(60)]
    for i, j in enumerate(jobs):
        await store.create_job(j, ["*", a] + ([b] if i % 7 == 0 else []))
    await store.claim_job(jobs[14].id, "p", 20_000)   # inactive now (still indexed)
    expected = [j.id for i, j in reversed(list(enumerate(jobs))) if i % 7 == 0 and i != 14]
    seen, state = [], None
    for _ in range(10):
        page = await search_page(store, [a, b], 3, state)
        seen += [j.id for j in page.jobs]
        state = page.paging_state
        if state is None:
            break
    assert seen == expected


async def test_outbox_keeps_tombstones_one_hour_on_cassandra(cassandra_hosts):
    """Outbox rows live seconds; their tombstones must not pile up for Cassandra's default ten
    days. A keyspace made before the option existed gets it at the next start."""
    from workup.settings import Settings
    from workup.storage import OUTBOX, keyspace_name
    points = Settings(cassandra_hosts=cassandra_hosts).cassandra_contact_points()
    keyspace = keyspace_name(f"t{new_id()[:10]}", "outbox")

    async def gc_grace(db: CassandraDb) -> int:
        rows = await trio.to_thread.run_sync(lambda: list(db._session.execute(
            "SELECT gc_grace_seconds FROM system_schema.tables WHERE keyspace_name = %s AND table_name = 'outbox_intents'",
            (keyspace,))))
        return rows[0]["gc_grace_seconds"]

    db = await CassandraDb.connect(points, keyspace, [OUTBOX])
    try:
        assert await gc_grace(db) == 3600
        await trio.to_thread.run_sync(lambda: db._session.execute(
            f"ALTER TABLE {keyspace}.outbox_intents WITH gc_grace_seconds = 864000", timeout=60))
        assert await gc_grace(db) == 864000       # as a table made by an older version
        again = await CassandraDb.connect(points, keyspace, [OUTBOX])
        try:
            assert await gc_grace(again) == 3600
        finally:
            await again.aclose()
    finally:
        await db.drop_keyspace()
        await db.aclose()


async def test_a_common_word_does_not_drive_the_search(store, monkeypatch):
    """`search_page` scans the rarest term's partition: with a word every job has and one that
    1 job in 20 has, a page costs a few point reads per match, not a dozen per match."""
    common, rare = f"common{new_id()[:8]}", f"r{new_id()[:8]}"      # the common word is the longer one
    jobs = [job(new_id(), 50_000 + i) for i in range(200)]
    await store.seed_jobs([(j, ["*", common] + ([rare] if i % 20 == 0 else [])) for i, j in enumerate(jobs)])
    checked: list[int] = []
    having = store.having_term

    async def counting(term, keys):
        checked.append(len(keys))
        return await having(term, keys)
    monkeypatch.setattr(store, "having_term", counting)
    page = await search_page(store, [common, rare], 5, None)
    assert [j.id for j in page.jobs] == [j.id for i, j in reversed(list(enumerate(jobs))) if i % 20 == 0][:5]
    assert sum(checked) <= 6, checked          # driven by the common word: 6 + 12 + ... + 96


async def test_seed_jobs_in_bulk_reads_like_created_jobs(store):
    """More jobs than one unlogged batch holds: each is readable by id, by client and by term."""
    client, term = new_id(), f"s{new_id()[:8]}"
    jobs = [job(client, 70_000 + i) for i in range(250)]
    await store.seed_jobs([(j, ["*", term]) for j in jobs])
    assert await store.get_job(jobs[123].id) == jobs[123]
    assert [j.id for j in await store.jobs_of_client(client)] == [j.id for j in reversed(jobs)]
    assert len(await store.scan_index(term, None, 1000)) == 250
    assert [j.id for j in (await search_page(store, [term], 3, None)).jobs] == [j.id for j in jobs[::-1][:3]]


# --- one index row per job and proposal however often they were created (reliability finding 5) -

async def test_a_job_created_again_after_a_kill_or_after_its_write_is_listed_once(store):
    client, term = new_id(), f"w{new_id()[:8]}"
    j = job(client, 1000)
    with pytest.raises(RuntimeError):   # the first attempt dies between its index rows and the job row
        await JobsStore(DiesBefore(store.db, "jobs")).create_job(j, ["*", term])
    redelivered = msgspec.structs.replace(j, created_ms=2000, updated_ms=2000)
    assert await store.create_job(redelivered, ["*", term])
    assert not await store.create_job(msgspec.structs.replace(j, created_ms=3000, updated_ms=3000), ["*", term])
    # the dead attempt's rows stay (nothing knows of them) but are skipped; the last one's are removed
    assert [k for k in await store.scan_index(term, None, 10)] == [(2000, j.id), (1000, j.id)]
    assert [x.id for x in await store.jobs_of_client(client)] == [j.id]
    assert [x.id for x in await store.indexed_jobs(await store.scan_index(term, None, 10))] == [j.id]
    page = await search_page(store, [term], 10, None)
    assert [x.id for x in page.jobs] == [j.id] and page.paging_state is None
    assert [x.id for x in (await search_page(store, [term], 1, None)).jobs] == [j.id]


async def test_a_redelivered_proposal_keeps_its_first_claim_time(store):
    j, f = new_id(), new_id()
    p = proposal(j, f, 0)
    assert await store.guard_proposal_at(j, f, p.id, 1000) == (p.id, 1000)
    assert await store.guard_proposal_at(j, f, p.id, 9000) == (p.id, 1000)   # a redelivery: the first time
    other = new_id()
    assert await store.guard_proposal_at(j, f, other, 9000) == (p.id, 1000)
    first = msgspec.structs.replace(p, created_ms=1000, updated_ms=1000)
    with pytest.raises(RuntimeError):
        await JobsStore(DiesBefore(store.db, "proposals_by_job")).add_proposal(first)
    await store.add_proposal(msgspec.structs.replace(first, updated_ms=9000))
    assert [x.id for x in await store.proposals_of_freelancer(f)] == [p.id]
    assert (await store.get_proposal(p.id)).created_ms == 1000
    # decided since: a later redelivery of the create resets nothing
    assert await store.decide_proposal(j, p.id, "REJECTED", 9500)
    await store.add_proposal(msgspec.structs.replace(first, updated_ms=9900))
    assert (await store.get_proposal(p.id)).status == "REJECTED"


async def test_a_proposal_of_a_known_job_is_read_by_one_statement(store):
    """What accept reads (issue 15): the row in its job's partition, without proposals_by_id."""
    j, other = job(new_id(), 7000), job(new_id(), 7000)
    p = proposal(j.id, new_id(), 7100)
    await store.add_proposal(p)
    with statements(store.db) as sent:
        assert await store.proposal_of_job(j.id, p.id) == p
    assert len(sent) == 1 and "proposals_by_id" not in sent[0]
    assert await store.proposal_of_job(other.id, p.id) is None      # another job's: not found
    assert await store.proposal_of_job(j.id, new_id()) is None


async def test_settle_proposals_decides_each_at_once(store):
    j = job(new_id(), 7000)
    ps = [proposal(j.id, new_id(), 7100 + i) for i in range(4)]
    for p in ps:
        await store.add_proposal(p)
    await store.settle_proposals(j.id, ps[1].id, [ps[0].id, ps[3].id], 8000)
    got = {p.id: (p.status, p.updated_ms) for p in await store.proposals_of_job(j.id)}
    assert got == {ps[0].id: ("REJECTED", 8000), ps[1].id: ("ACCEPTED", 8000), ps[2].id: ("PENDING", 7102),
                   ps[3].id: ("REJECTED", 8000)}

