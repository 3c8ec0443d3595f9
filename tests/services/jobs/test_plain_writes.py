"""The writes of a flow that no two requests race on are plain, not lightweight transactions
(issue 15), on SQLite and Cassandra alike: the acceptance's proposal decisions and the job's
contract id (jobs), a milestone's payment request id and its ACCEPTED → PAID move (contracts)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from workup.services.contracts.store import TABLES as CONTRACT_TABLES, ContractsStore
from workup.services.jobs.store import TABLES, JobsStore
from workup.storage import Table

from ._fixtures import KINDS, store_of
from ._services import new_id
from .test_store import job, proposal
from tests.services.contracts.test_store import contract


class NoConditions:
    """A store's Db on which a conditional write fails the test."""

    def __init__(self, db: Any) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def update_if(self, table: Table, *args: Any) -> bool:
        raise AssertionError(f"a lightweight transaction on {table.name}")

    async def insert_if_absent(self, table: Table, row: Any) -> bool:
        raise AssertionError(f"a lightweight transaction on {table.name}")


@pytest.fixture(params=KINDS)
async def jobs(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "jobs", TABLES, JobsStore) as s:
        yield s


@pytest.fixture(params=KINDS)
async def contracts(request, tmp_path):
    async with store_of(request.param, tmp_path, request, "contracts", CONTRACT_TABLES, ContractsStore) as s:
        yield s


async def test_a_claimed_job_settles_its_proposals_and_contract_without_conditions(jobs):
    j = job(new_id(), 1000)
    await jobs.create_job(j, ["*"])
    chosen, other, late = (proposal(j.id, new_id(), 2000 + i) for i in range(3))
    for p in (chosen, other, late):
        await jobs.add_proposal(p)
    assert await jobs.claim_job(j.id, chosen.id, 3000)
    claimed = await jobs.get_job(j.id)
    plain = JobsStore(NoConditions(jobs.db))
    await plain.settle_proposals(j.id, chosen.id, [other.id], 4000)
    await plain.settle_proposals(j.id, chosen.id, [other.id], 4000)        # the relay runs it again: the same
    await plain.record_contract(claimed, "c1")
    statuses = {p.id: (p.status, p.updated_ms) for p in await jobs.proposals_of_job(j.id)}
    assert statuses == {chosen.id: ("ACCEPTED", 4000), other.id: ("REJECTED", 4000), late.id: ("PENDING", 2002)}
    # the other writers stay conditional on PENDING, so they never undo a decision
    assert not await jobs.decide_proposal(j.id, chosen.id, "REJECTED", 5000)
    assert not await jobs.update_pending_proposal(msgspec.structs.replace(chosen, cover_letter="changed"))
    after = await jobs.get_job(j.id)
    assert (after.contract_id, after.accepted_proposal_id, after.active, after.title) == ("c1", chosen.id, False, j.title)


async def test_a_milestone_is_paid_without_conditions(contracts):
    c, ms = contract(new_id(), new_id(), 1000, n=2)
    await contracts.create_contract(c, ms)
    m = ms[1]
    for status in ("IN_PROGRESS", "IN_REVIEW", "ACCEPTED"):
        assert await contracts.move_milestone(m, status, m.updated_ms + 1)
        m = await contracts.get_milestone(m.id)
    plain = ContractsStore(NoConditions(contracts.db))
    await plain.note_payment_request(m, "pr1")
    assert (await contracts.get_milestone(m.id)).payment_request_id == "pr1"
    await plain.pay_milestone(m, "pr1", 5000)
    await plain.pay_milestone(m, "pr1", 5001)                               # a repeat: still PAID
    paid = await contracts.get_milestone(m.id)
    assert (paid.status, paid.payment_request_id, paid.updated_ms, paid.amount) == ("PAID", "pr1", 5001, m.amount)
    assert not await contracts.move_milestone(m, "PAID", 6000)              # the stale ACCEPTED seen: nothing moves
    assert (await contracts.get_milestone(ms[0].id)).status == "OPEN"       # its neighbour untouched
