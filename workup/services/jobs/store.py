"""The jobs store: one table per query, on Cassandra or SQLite (see ``workup.storage``).

| table | key | query |
|---|---|---|
| jobs | id | a job by id (state row: conditional updates) |
| jobs_by_client | client_id, (created_ms, job_id) DESC | a client's jobs, newest first |
| job_index | term, (created_ms, job_id) DESC | active jobs having a word (``*`` = all), newest first |
| proposals_by_job | job_id, id | a job's proposals (state rows: conditional updates) |
| proposals_by_id | id | which job a proposal belongs to |
| proposals_by_freelancer | freelancer_id, (created_ms, id) DESC | a freelancer's proposals |
| proposal_slots | (job_id, freelancer_id) | at most one proposal per freelancer and job (LWT, see ``workup.storage.slots``) |
| outbox_intents | (kind, bucket), item | accepted jobs whose contract is not recorded yet, event intents (relay; ``workup.storage.outbox``) |
| outbox_buckets | kind, bucket | the minutes whose intents a relay scan reads |
| outbox | kind, item | an earlier release's intents, moved into buckets when first scanned |
| inbox | once_key | first answers of the ``once`` commands (``workup.storage.inbox``) |
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Sequence

import msgspec
import trio

from ...messages.jobs import Attachment, Job, JobListing, Proposal, ProposalMilestone
from ...ids import rfc3339
from ...runtime.inbox import Recorded
from ...runtime.outbox import Bell
from ...storage import OUTBOX_TABLES, Db, DeleteLater, Outbox, Table, claim_slot, located, slot_table
from ...storage.inbox import INBOX, DbInbox, update_if_once
from ...storage.slots import HolderState

__all__ = ["TABLES", "StoredJob", "StoredProposal", "JobsStore"]

TEXT, BIGINT, BOOL = "text", "bigint", "boolean"
_NEWEST = (("created_ms", "DESC"), ("job_id", "DESC"))

JOBS = Table("jobs", {
    "id": TEXT, "client_id": TEXT, "title": TEXT, "description": TEXT, "location": TEXT,
    "budget": TEXT, "skills": TEXT, "experience": TEXT, "active": BOOL, "created_ms": BIGINT,
    "updated_ms": BIGINT, "accepted_proposal_id": TEXT, "contract_id": TEXT,
}, ("id",))
JOBS_BY_CLIENT = Table("jobs_by_client", {"client_id": TEXT, "created_ms": BIGINT, "job_id": TEXT},
                       ("client_id",), _NEWEST)
JOB_INDEX = Table("job_index", {"term": TEXT, "created_ms": BIGINT, "job_id": TEXT}, ("term",), _NEWEST)
PROPOSALS = Table("proposals_by_job", {
    "job_id": TEXT, "id": TEXT, "freelancer_id": TEXT, "cover_letter": TEXT, "job_duration": TEXT,
    "status": TEXT, "milestones": TEXT, "attachments": TEXT, "created_ms": BIGINT, "updated_ms": BIGINT,
}, ("job_id",), (("id", "ASC"),))
PROPOSALS_BY_ID = Table("proposals_by_id", {"id": TEXT, "job_id": TEXT}, ("id",))
PROPOSALS_BY_FREELANCER = Table("proposals_by_freelancer", {
    "freelancer_id": TEXT, "created_ms": BIGINT, "id": TEXT, "job_id": TEXT,
}, ("freelancer_id",), (("created_ms", "DESC"), ("id", "DESC")))
PROPOSAL_SLOTS = slot_table("proposal_slots", ("job_id", "freelancer_id"), "proposal_id")

TABLES = [JOBS, JOBS_BY_CLIENT, JOB_INDEX, PROPOSALS, PROPOSALS_BY_ID, PROPOSALS_BY_FREELANCER,
          PROPOSAL_SLOTS, *OUTBOX_TABLES, INBOX]


class StoredJob(msgspec.Struct, kw_only=True):
    id: str
    client_id: str
    title: str
    description: str
    location: str | None = None
    budget: Decimal | None = None
    skills: list[str] = []
    experience: Any = None
    active: bool = True
    created_ms: int
    updated_ms: int
    accepted_proposal_id: str | None = None
    contract_id: str | None = None

    def public(self) -> Job:
        return Job(id=self.id, title=self.title, description=self.description, location=self.location,
                   budget=self.budget, skills=self.skills, experience=self.experience,
                   client_id=self.client_id, active=self.active, created_at=rfc3339(self.created_ms),
                   updated_at=rfc3339(self.updated_ms))

    def listing(self) -> JobListing:
        return JobListing(id=self.id, title=self.title, description=self.description,
                          experience=self.experience, skills=self.skills, budget=self.budget,
                          created_at=rfc3339(self.created_ms))


class StoredProposal(msgspec.Struct, kw_only=True):
    id: str
    job_id: str
    freelancer_id: str
    cover_letter: str
    job_duration: Any
    status: Any
    milestones: list[ProposalMilestone]
    attachments: list[Attachment]
    created_ms: int
    updated_ms: int

    def public(self) -> Proposal:
        return Proposal(id=self.id, job_id=self.job_id, freelancer_id=self.freelancer_id,
                        cover_letter=self.cover_letter, job_duration=self.job_duration, status=self.status,
                        milestones=self.milestones, attachments=self.attachments,
                        created_at=rfc3339(self.created_ms), updated_at=rfc3339(self.updated_ms))


_enc = msgspec.json.Encoder(decimal_format="string")


def _json(value: Any) -> str:
    return _enc.encode(value).decode()


def _index_rows(job: StoredJob, terms: Sequence[str]) -> list[tuple[Table, dict[str, Any]]]:
    """The index rows of a new job: one per search term, one in its client's listing."""
    return ([(JOB_INDEX, {"term": t, "created_ms": job.created_ms, "job_id": job.id}) for t in terms]
            + [(JOBS_BY_CLIENT, {"client_id": job.client_id, "created_ms": job.created_ms, "job_id": job.id})])


def _job_row(j: StoredJob) -> dict[str, Any]:
    row = msgspec.structs.asdict(j)
    row["budget"] = None if j.budget is None else str(j.budget)
    row["skills"] = json.dumps(j.skills)
    return row


def _job(row: dict[str, Any]) -> StoredJob:
    row = dict(row, skills=json.loads(row["skills"] or "[]"))
    return msgspec.convert(row, StoredJob, strict=False)


def _proposal_row(p: StoredProposal) -> dict[str, Any]:
    row = msgspec.structs.asdict(p)
    row["milestones"] = _json(p.milestones)
    row["attachments"] = _json(p.attachments)
    return row


def _proposal(row: dict[str, Any]) -> StoredProposal:
    row = dict(row, milestones=msgspec.json.decode(row["milestones"]),
               attachments=msgspec.json.decode(row["attachments"]))
    return msgspec.convert(row, StoredProposal, strict=False, from_attributes=False)


class JobsStore:
    """The jobs port; the adapter is the :class:`Db` it is built on (Cassandra or SQLite)."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self.bell = Bell()      # rung by each intent written: wakes the relay
        self.later = DeleteLater(db)    # forgotten intents, an inactive job's index rows
        self.outbox = Outbox(db, self.later, self.bell)
        self.inbox = DbInbox(db)

    # jobs
    async def create_job(self, job: StoredJob, terms: Sequence[str]) -> bool:
        """Index rows first, the job row last: a crash leaves at most index rows pointing at no
        job, or at the job under another ``created_ms`` (a redelivery made it later), which
        readers skip (:meth:`indexed_jobs`). False when the job existed already; this attempt's
        index rows are then removed if they are not the job's own (a redelivery after the write)."""
        rows = _index_rows(job, terms)
        # Not a logged batch: the job row, written only once every index row is acknowledged,
        # is what makes them count (readers skip a key whose job is missing), so a batch log
        # would buy nothing. One unlogged batch (~13 term partitions): 0.3-0.7 ms less a post.
        await self.db.upsert_bulk(rows)
        if await self.db.insert_if_absent(JOBS, _job_row(job)):
            return True
        first = await self.get_job(job.id)
        if first is not None and first.created_ms != job.created_ms:
            for table in (JOB_INDEX, JOBS_BY_CLIENT):
                await self.db.delete_many(table, [key for t, key in rows if t is table])
        return False

    async def seed_jobs(self, jobs: Sequence[tuple[StoredJob, Sequence[str]]]) -> None:
        """Bulk loading (``workup bench corpus``): the rows :meth:`create_job` writes, without
        its guarantees (no existence check, the job rows not after their index rows), for jobs
        no one reads yet."""
        writes: list[tuple[Table, dict[str, Any]]] = []
        for job, terms in jobs:
            writes += [*_index_rows(job, terms), (JOBS, _job_row(job))]
        await self.db.upsert_bulk(writes)

    async def get_job(self, job_id: str) -> StoredJob | None:
        rows = await self.db.select(JOBS, {"id": job_id})
        return _job(rows[0]) if rows else None

    async def get_jobs(self, job_ids: Sequence[str]) -> list[StoredJob]:
        """The jobs that exist among ``job_ids``, in that order."""
        rows = {r["id"]: r for r in await self.db.select_in(JOBS, {}, [{"id": i} for i in job_ids])}
        return [_job(rows[i]) for i in job_ids if i in rows]

    async def indexed_jobs(self, keys: Sequence[tuple[int, str]]) -> list[StoredJob]:
        """The jobs of index keys ``(created_ms, job_id)``, in that order: those that exist and
        were created at the key's time (a key with another time was left by an attempt of
        ``CreateJob`` that died; its redelivery indexed the job again, under its own time)."""
        jobs = {j.id: j for j in await self.get_jobs(list(dict.fromkeys(job_id for _, job_id in keys)))}
        return [j for ms, job_id in keys if (j := jobs.get(job_id)) is not None and j.created_ms == ms]

    async def jobs_of_client(self, client_id: str) -> list[StoredJob]:
        rows = await self.db.select(JOBS_BY_CLIENT, {"client_id": client_id})
        return await self.indexed_jobs([(r["created_ms"], r["job_id"]) for r in rows])

    async def scan_index(self, term: str, after: tuple[int, str] | None, limit: int) -> list[tuple[int, str]]:
        """(created_ms, job_id) of jobs indexed under ``term``, newest first, after ``after``."""
        rows = await self.db.select(JOB_INDEX, {"term": term}, after=after, limit=limit)
        return [(r["created_ms"], r["job_id"]) for r in rows]

    async def having_term(self, term: str, keys: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
        """The keys (in order) whose job is indexed under ``term`` too: one read of the term's
        partition for all of them."""
        rows = await self.db.select_in(JOB_INDEX, {"term": term},
                                       [{"created_ms": ms, "job_id": jid} for ms, jid in keys])
        present = {(r["created_ms"], r["job_id"]) for r in rows}
        return [k for k in keys if k in present]

    def unindex_job(self, job: StoredJob, terms: Sequence[str]) -> None:
        """The job's search-index rows, deleted with the others of their moment
        (:class:`DeleteLater`): an inactive job is skipped by every reader, so they are only
        kept small; a term's rows of many jobs go in one mutation of its partition."""
        for t in terms:
            self.later.delete(JOB_INDEX, {"term": t, "created_ms": job.created_ms, "job_id": job.id})

    async def claim_job(self, job_id: str, proposal_id: str, now: int) -> bool:
        """Make the job inactive with ``proposal_id`` accepted, if no proposal was accepted yet."""
        return await self.db.update_if(
            JOBS, {"id": job_id},
            {"accepted_proposal_id": proposal_id, "active": False, "updated_ms": now},
            {"accepted_proposal_id": None, "active": True})

    async def record_contract(self, job: StoredJob, contract_id: str) -> None:
        """The contract id of a job already claimed (``job.accepted_proposal_id`` set, which
        nothing changes afterwards): every writer (handler, relay, redelivery) writes the same id,
        derived from the proposal's, so a plain write does (no lightweight transaction)."""
        assert job.accepted_proposal_id is not None
        await self.db.update(JOBS, {"id": job.id}, {"contract_id": contract_id})

    # proposals
    async def guard_proposal(self, job_id: str, freelancer_id: str, proposal_id: str, now: int) -> str:
        """Reserve the (job, freelancer) slot for ``proposal_id``; returns the id holding it."""
        return (await self.guard_proposal_at(job_id, freelancer_id, proposal_id, now))[0]

    async def guard_proposal_at(self, job_id: str, freelancer_id: str, proposal_id: str,
                                now: int) -> tuple[str, int]:
        """:meth:`guard_proposal`, with when the holder claimed the slot (the same for every
        attempt of one request: the proposal's creation time, so its index row is too)."""
        async def state(holder: str) -> HolderState:
            return "missing" if await self.get_proposal(holder) is None else "live"
        return await claim_slot(self.db, PROPOSAL_SLOTS, {"job_id": job_id, "freelancer_id": freelancer_id},
                                "proposal_id", proposal_id, now, state)

    async def add_proposal(self, p: StoredProposal, intents: Sequence[tuple[str, str, int]] = ()) -> None:
        """The proposal's rows, as made at ``p.created_ms``: its slot's claim time, which every
        attempt of one request agrees on (:meth:`guard_proposal_at`), so a late attempt (a
        redelivery) never resets a proposal updated or decided since (:meth:`Db.create`: one
        logged batch, no lightweight transaction; the state row last should they need more).
        ``intents`` (``(kind, item, created_ms)``) go in the same batch: written with the change
        they announce, and a forgotten one stays forgotten (its delete is newer than the batch)."""
        await self.db.create([
            *self.outbox.rows(intents),
            (PROPOSALS_BY_ID, {"id": p.id, "job_id": p.job_id}),
            (PROPOSALS_BY_FREELANCER, {"freelancer_id": p.freelancer_id, "created_ms": p.created_ms,
                                       "id": p.id, "job_id": p.job_id}),
            (PROPOSALS, _proposal_row(p))], p.created_ms)
        if intents:
            self.outbox.added(intents)

    async def get_proposal(self, proposal_id: str) -> StoredProposal | None:
        row = await located(self.db, PROPOSALS_BY_ID, PROPOSALS, {"id": proposal_id})
        return _proposal(row) if row else None

    async def proposal_of_job(self, job_id: str, proposal_id: str) -> StoredProposal | None:
        """:meth:`get_proposal` when its job is known: one read (the row itself), not two."""
        rows = await self.db.select(PROPOSALS, {"job_id": job_id, "id": proposal_id})
        return _proposal(rows[0]) if rows else None

    async def proposals_of_job(self, job_id: str) -> list[StoredProposal]:
        """Oldest first."""
        rows = await self.db.select(PROPOSALS, {"job_id": job_id})
        return sorted((_proposal(r) for r in rows), key=lambda p: (p.created_ms, p.id))

    async def proposals_of_freelancer(self, freelancer_id: str) -> list[StoredProposal]:
        """Newest first."""
        refs = await self.db.select(PROPOSALS_BY_FREELANCER, {"freelancer_id": freelancer_id})
        found = await self.db.select_each(PROPOSALS, [{"job_id": r["job_id"], "id": r["id"]} for r in refs])
        return [_proposal(rows[0]) for rows in found if rows]

    async def update_pending_proposal(self, p: StoredProposal, once: Recorded | None = None) -> bool:
        """Replace the editable fields while the proposal is still PENDING, recording the
        command's answer with the change (``workup/storage/inbox.py``)."""
        row = _proposal_row(p)
        changes = {k: row[k] for k in ("cover_letter", "job_duration", "milestones", "attachments", "updated_ms")}
        return await update_if_once(self.db, PROPOSALS, {"job_id": p.job_id, "id": p.id}, changes,
                                    {"status": "PENDING"}, once)

    async def settle_proposals(self, job_id: str, accepted: str, rejected: Sequence[str], now: int) -> None:
        """The decisions of a claimed job: ``accepted`` → ACCEPTED, ``rejected`` (those seen
        PENDING) → REJECTED, as plain writes. No race needs :meth:`decide_proposal`'s condition:
        the job's claim already chose ``accepted`` once and for all, every run of the acceptance
        writes the same statuses, and the only other status write, ``CreateProposal``'s own
        REJECTED after a claim, is conditional on PENDING (so never undoes ACCEPTED). The rows
        are independent, so the writes go at once (one round trip's time, not one per proposal)."""
        async with trio.open_nursery() as writes:
            for pid, status in ((accepted, "ACCEPTED"), *((r, "REJECTED") for r in rejected)):
                writes.start_soon(self.db.update, PROPOSALS, {"job_id": job_id, "id": pid},
                                  {"status": status, "updated_ms": now})

    async def decide_proposal(self, job_id: str, proposal_id: str, status: str, now: int) -> bool:
        """PENDING → ``status`` (ACCEPTED / REJECTED); False when it was not PENDING."""
        return await self.db.update_if(PROPOSALS, {"job_id": job_id, "id": proposal_id},
                                       {"status": status, "updated_ms": now}, {"status": "PENDING"})
