"""Notification events survive a worker killed between a state change and its publish.

The transport holds the publish of one event type (as a broker that went away would), the test
kills the worker there (its scope is cancelled at once, as a killed process stops), restarts it
with a working transport and checks that the event still goes out: the contracts service's relay
publishes the event intent it wrote before the change; the jobs service finishes the acceptance
again and announces its decisions. A change that did not apply announces nothing.
"""

from __future__ import annotations

import pytest
import trio

from workup.transport.envelope import Caller
from workup.messages.contracts import GetContract, GetMilestone, ProgressMilestone
from workup.messages.jobs import AcceptProposal, CreateJob
from workup.transport import Event
from workup.transport import LocalTransport
from workup.runtime.outbox import EVENT
from workup.storage import opened_store
from workup.services.contracts.store import TABLES, ContractsStore

from ._services import new_id, running
from .test_crash_recovery import DEADLINE, eventually, settings, unanswered  # noqa: F401  (fixture)
from .test_service_flow import proposal


class HoldingEvents(LocalTransport):
    """Publishes of ``held`` events block (``reached`` is set) until ``held`` is cleared."""

    def __init__(self) -> None:
        super().__init__()
        self.held: str | None = None
        self.reached = trio.Event()

    async def publish_event(self, event: Event) -> None:
        if event.type == self.held:
            self.reached.set()
            await trio.sleep_forever()
        await super().publish_event(event)


class FailingOnce(LocalTransport):
    """The first publish of ``failing`` raises, as a broker that just went away would."""

    def __init__(self, failing: str) -> None:
        super().__init__()
        self.failing: str | None = failing

    async def publish_event(self, event: Event) -> None:
        if event.type == self.failing:
            self.failing = None
            raise ConnectionError("broker went away")
        await super().publish_event(event)


async def _contract_with_milestone(h, client: Caller, fay: Caller) -> tuple[str, str]:
    job = await h.ok("jobs.CreateJob", CreateJob(title="t", description="d"), client, 201)
    p = await h.ok("jobs.CreateProposal", proposal(job["id"]), fay, 201)
    cid = (await h.ok("jobs.AcceptProposal", AcceptProposal(job_id=job["id"], proposal_id=p["id"]), client))["contractId"]
    return cid, (await h.ok("contracts.GetContract", GetContract(contract_id=cid), client))["milestoneIds"][0]


async def _event_intents(settings) -> list:
    async with opened_store(settings, "contracts", TABLES, ContractsStore) as store:
        return await store.outbox.pending(EVENT)


async def test_progress_killed_before_its_event_went_out(tmp_path, settings):
    client, fay = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER")
    transport = HoldingEvents()
    async with running(tmp_path, ("jobs", "contracts"), settings=settings, transport=transport) as h:
        cid, mid = await _contract_with_milestone(h, client, fay)
        await h.ok("contracts.ProgressMilestone", ProgressMilestone(milestone_id=mid), fay)   # IN_PROGRESS
        transport.held = "milestone.in_review"
        h.nursery.start_soon(unanswered, h, "contracts.ProgressMilestone", ProgressMilestone(milestone_id=mid), fay)
        with trio.fail_after(10):
            await transport.reached.wait()   # IN_REVIEW is stored; its event is being published
        h.kill("contracts")
        await trio.sleep(DEADLINE)
        assert h.events_of("milestone.in_review") == []
        transport.held = None
        await h.start("contracts")           # its relay publishes the intent left behind
        events = await eventually(lambda: _async(h.events_of("milestone.in_review")))
        assert [(e.recipients, e.data) for e in events] == [([client.user_id], {"milestoneId": mid, "contractId": cid})]
        assert (await h.ok("contracts.GetMilestone", GetMilestone(milestone_id=mid), fay))["status"] == "IN_REVIEW"
        assert await eventually(_no_intents(settings))


async def test_accept_killed_before_its_events_went_out(tmp_path, settings):
    client, fay, sam = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER"), Caller(new_id(), "FREELANCER")
    transport = HoldingEvents()
    async with running(tmp_path, ("jobs", "contracts"), settings=settings, transport=transport) as h:
        job = await h.ok("jobs.CreateJob", CreateJob(title="t", description="d"), client, 201)
        p = await h.ok("jobs.CreateProposal", proposal(job["id"]), fay, 201)
        other = await h.ok("jobs.CreateProposal", proposal(job["id"]), sam, 201)
        transport.held = "proposal.accepted"
        h.nursery.start_soon(unanswered, h, "jobs.AcceptProposal", AcceptProposal(job_id=job["id"], proposal_id=p["id"]), client)
        with trio.fail_after(10):
            await transport.reached.wait()   # the proposal is ACCEPTED; its event is being published
        h.kill("jobs")
        await trio.sleep(DEADLINE)
        transport.held = None
        await h.start("jobs")                # its relay finishes the acceptance, announcing it
        accepted = await eventually(lambda: _async(h.events_of("proposal.accepted")))
        assert {(tuple(e.recipients), e.data["proposalId"]) for e in accepted} == {((fay.user_id,), p["id"])}
        rejected = await eventually(lambda: _async(h.events_of("proposal.rejected")))
        assert {(tuple(e.recipients), e.data["proposalId"]) for e in rejected} == {((sam.user_id,), other["id"])}


async def test_a_move_that_lost_its_race_announces_nothing(tmp_path, settings):
    client, fay = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER")
    async with running(tmp_path, ("jobs", "contracts"), settings=settings) as h:
        cid, mid = await _contract_with_milestone(h, client, fay)
        await h.ok("contracts.ProgressMilestone", ProgressMilestone(milestone_id=mid), fay)   # IN_PROGRESS
        statuses: list[int] = []

        async def progress() -> None:
            statuses.append((await h.answer("contracts.ProgressMilestone", ProgressMilestone(milestone_id=mid), fay))[0])
        async with trio.open_nursery() as n:
            for _ in range(3):
                n.start_soon(progress)
        assert statuses.count(200) == 1 and statuses.count(409) == 2
        assert await eventually(_no_intents(settings))
        await trio.sleep(0.5)                # relay rounds (grace 200 ms, poll 0.1 s)
        assert len(h.events_of("milestone.in_review")) == 1


async def _async(value):
    return value


def _no_intents(settings):
    async def check() -> bool:
        return not await _event_intents(settings)
    return check


async def test_a_failed_publish_still_answers_and_the_relay_sends_it(tmp_path, settings):
    client, fay = Caller(new_id(), "CLIENT"), Caller(new_id(), "FREELANCER")
    transport = FailingOnce("milestone.in_review")
    async with running(tmp_path, ("jobs", "contracts"), settings=settings, transport=transport) as h:
        cid, mid = await _contract_with_milestone(h, client, fay)
        await h.ok("contracts.ProgressMilestone", ProgressMilestone(milestone_id=mid), fay)   # IN_PROGRESS
        moved = await h.ok("contracts.ProgressMilestone", ProgressMilestone(milestone_id=mid), fay)
        assert moved["status"] == "IN_REVIEW" and transport.failing is None   # the change stands
        events = await eventually(lambda: _async(h.events_of("milestone.in_review")))
        assert [e.data for e in events] == [{"milestoneId": mid, "contractId": cid}]
        assert await eventually(_no_intents(settings))
