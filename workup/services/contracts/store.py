"""The contracts store: one table per query, on Cassandra or SQLite (see ``workup.storage``).

| table | key | query |
|---|---|---|
| contracts | id | a contract (state row: conditional updates) |
| contracts_by_party | user_id, (created_ms, contract_id) DESC | a user's contracts, newest first |
| milestones_by_contract | contract_id, position | a contract's milestones in proposal order (state rows) |
| milestones_by_id | id | where a milestone lives |
| terminations_by_contract | contract_id, id | a contract's termination requests (state rows) |
| terminations_by_id | id | where a termination request lives |
| termination_slots | (contract_id, requester_id) | one PENDING request per party and contract (LWT, see ``workup.storage.slots``) |
| outbox_intents | (kind, bucket), item | payment requests / cancellations not acknowledged yet, event intents (relay; ``workup.storage.outbox``) |
| outbox_buckets | kind, bucket | the minutes whose intents a relay scan reads |
| outbox | kind, item | an earlier release's intents, moved into buckets when first scanned |
| inbox | once_key | first answers of the ``once`` commands (``workup.storage.inbox``) but the milestones' |

A contract's id is derived from its proposal's id, a milestone's from (contract, position), and a
contract's ``created_ms`` (the ``contracts_by_party`` clustering key) is the acceptance's time that
``CreateContract`` carries, so a retried ``CreateContract`` writes the very same rows, as made at
that time (:meth:`Db.create`): a retry never resets a state that moved on.

The milestone commands that are ``once`` (progress, evaluate) keep their first answers in the
milestone row they move, written by the very lightweight transaction that moves it
(:class:`MilestoneInbox`): no read of the inbox before the command and no write after it (two
statements fewer per command, issue 15), and no window between the move and its answer in which
a crash would let a repeat move the milestone a second time.

Where a milestone lives (its contract and position) never changes once its row exists, so the
store keeps the locations it has seen (written by :meth:`ContractsStore.create_contract` or found
through ``milestones_by_id``) in a bounded map of the process: a milestone command then reads
its row by one statement instead of two (issue 15). A location is only kept once its row was
written or found, and a cached location whose row is not there falls back to the index.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import datetime as dt

import msgspec

from ...runtime.together import together
from ...ids import CONTRACT_IDS, derived_id, rfc3339
from ...messages.contracts import Contract, EvaluateMilestone, Milestone, ProgressMilestone, TerminationRequest
from ...runtime.inbox import OnceKey, Recorded, kept
from ...runtime.outbox import Bell
from ...storage import OUTBOX_TABLES, Db, DeleteLater, Outbox, Table, claim_slot, located, slot_table
from ...storage.inbox import INBOX, DbInbox, update_if_once
from ...storage.slots import HolderState

__all__ = ["TABLES", "StoredContract", "StoredMilestone", "StoredTermination", "ContractsStore",
           "MilestoneInbox", "IN_MILESTONE_ROW", "contract_id_for", "milestone_id_for", "payment_request_id_for"]

TEXT, BIGINT, INT = "text", "bigint", "int"

CONTRACTS = Table("contracts", {
    "id": TEXT, "job_id": TEXT, "job_title": TEXT, "proposal_id": TEXT, "client_id": TEXT,
    "freelancer_id": TEXT, "status": TEXT, "milestone_ids": TEXT, "created_ms": BIGINT, "updated_ms": BIGINT,
}, ("id",))
CONTRACTS_BY_PARTY = Table("contracts_by_party", {"user_id": TEXT, "created_ms": BIGINT, "contract_id": TEXT},
                           ("user_id",), (("created_ms", "DESC"), ("contract_id", "DESC")))
MILESTONES = Table("milestones_by_contract", {
    "contract_id": TEXT, "position": INT, "id": TEXT, "description": TEXT, "amount": TEXT,
    "due_date": TEXT, "status": TEXT, "payment_request_id": TEXT, "updated_ms": BIGINT,
    "inbox": TEXT,   # JSON: the first answers of the once commands that moved it (MilestoneInbox)
}, ("contract_id",), (("position", "ASC"),))
MILESTONES_BY_ID = Table("milestones_by_id", {"id": TEXT, "contract_id": TEXT, "position": INT}, ("id",))
TERMINATIONS = Table("terminations_by_contract", {
    "contract_id": TEXT, "id": TEXT, "requester_id": TEXT, "reason": TEXT, "status": TEXT,
    "created_ms": BIGINT, "updated_ms": BIGINT,
}, ("contract_id",), (("id", "ASC"),))
TERMINATIONS_BY_ID = Table("terminations_by_id", {"id": TEXT, "contract_id": TEXT}, ("id",))
TERMINATION_SLOTS = slot_table("termination_slots", ("contract_id", "requester_id"), "termination_id")

TABLES = [CONTRACTS, CONTRACTS_BY_PARTY, MILESTONES, MILESTONES_BY_ID, TERMINATIONS, TERMINATIONS_BY_ID,
          TERMINATION_SLOTS, *OUTBOX_TABLES, INBOX]

def contract_id_for(proposal_id: str) -> str:
    return derived_id(CONTRACT_IDS, "contract", proposal_id)


def milestone_id_for(contract_id: str, position: int) -> str:
    return derived_id(CONTRACT_IDS, "milestone", contract_id, str(position))


def payment_request_id_for(milestone_id: str) -> str:
    """The id payments gives the milestone's one payment request (``CreatePaymentRequest.id``):
    known before payments is asked, so an evaluation's answer is whole when it is recorded."""
    return derived_id(CONTRACT_IDS, "payment request", milestone_id)


class StoredContract(msgspec.Struct, kw_only=True):
    id: str
    job_id: str
    job_title: str
    proposal_id: str
    client_id: str
    freelancer_id: str
    status: Any
    milestone_ids: list[str]
    created_ms: int
    updated_ms: int

    def parties(self) -> tuple[str, str]:
        return self.client_id, self.freelancer_id

    def public(self) -> Contract:
        return Contract(id=self.id, job_id=self.job_id, job_title=self.job_title, proposal_id=self.proposal_id,
                        client_id=self.client_id, freelancer_id=self.freelancer_id, status=self.status,
                        milestone_ids=self.milestone_ids, created_at=rfc3339(self.created_ms))


class StoredMilestone(msgspec.Struct, kw_only=True):
    id: str
    contract_id: str
    position: int
    description: str
    amount: Decimal
    due_date: dt.date
    status: Any
    payment_request_id: str | None = None
    updated_ms: int
    inbox: list[Recorded] = []     # the once commands' first answers (MilestoneInbox)

    def public(self) -> Milestone:
        return Milestone(id=self.id, contract_id=self.contract_id, description=self.description,
                         amount=self.amount, due_date=self.due_date, status=self.status)


class StoredTermination(msgspec.Struct, kw_only=True):
    id: str
    contract_id: str
    requester_id: str
    reason: str
    status: Any
    created_ms: int
    updated_ms: int

    def public(self) -> TerminationRequest:
        return TerminationRequest(id=self.id, contract_id=self.contract_id, requester_id=self.requester_id,
                                  reason=self.reason, status=self.status)


def _contract(row: dict[str, Any]) -> StoredContract:
    return msgspec.convert(dict(row, milestone_ids=json.loads(row["milestone_ids"])), StoredContract, strict=False)


_INBOX = msgspec.json.Decoder(list[Recorded])
_inbox_json = msgspec.json.Encoder()


def _milestone(row: dict[str, Any]) -> StoredMilestone:
    inbox = row.get("inbox")
    row = dict(row, inbox=_INBOX.decode(inbox) if inbox else [])
    return msgspec.convert(row, StoredMilestone, strict=False)


def _termination(row: dict[str, Any]) -> StoredTermination:
    return msgspec.convert(row, StoredTermination, strict=False)


# milestone id -> (contract id, position): about 100 bytes an entry, so a few MB at most
LOCATIONS_KEPT = 20_000


class ContractsStore:
    """The contracts port; the adapter is the :class:`Db` it is built on (Cassandra or SQLite)."""

    def __init__(self, db: Db) -> None:
        self.db = db
        self._locations: OrderedDict[str, tuple[str, int]] = OrderedDict()
        self.bell = Bell()      # rung by each intent written: wakes the relay
        self.later = DeleteLater(db)    # forgotten intents
        self.outbox = Outbox(db, self.later, self.bell)
        self.inbox = MilestoneInbox(DbInbox(db))

    # contracts
    async def create_contract(self, c: StoredContract, milestones: list[StoredMilestone]) -> None:
        """The milestones, the indexes and the contract row, as made at ``c.created_ms`` (the
        acceptance's time, which every attempt carries: :meth:`Db.create`), so a late attempt
        (a redelivery, jobs' relay twin) never resets a milestone or a contract that moved since,
        without a lightweight transaction per row. One logged batch, all or none; should the
        rows be too big for one, the contract row goes last (its presence means complete)."""
        rows: list[tuple[Table, dict[str, Any]]] = []
        for m in milestones:
            row = msgspec.structs.asdict(m)
            row.update(amount=str(m.amount), due_date=m.due_date.isoformat())
            del row["inbox"]       # none yet
            rows += [(MILESTONES, row),
                     (MILESTONES_BY_ID, {"id": m.id, "contract_id": m.contract_id, "position": m.position})]
        rows += [(CONTRACTS_BY_PARTY, {"user_id": user, "created_ms": c.created_ms, "contract_id": c.id})
                 for user in c.parties()]
        contract = msgspec.structs.asdict(c)
        contract["milestone_ids"] = json.dumps(c.milestone_ids)
        await self.db.create([*rows, (CONTRACTS, contract)], c.created_ms)
        for m in milestones:
            # written now or before: either way the row at (contract, position) is this id's
            self._located(m.id, m.contract_id, m.position)

    async def get_contract(self, contract_id: str) -> StoredContract | None:
        rows = await self.db.select(CONTRACTS, {"id": contract_id})
        return _contract(rows[0]) if rows else None

    async def contracts_of(self, user_id: str) -> list[StoredContract]:
        """Newest first. An index row whose time is not its contract's was left by an attempt
        that died before the contract row (before ``accepted_ms``, attempts differed): skipped."""
        refs = await self.db.select(CONTRACTS_BY_PARTY, {"user_id": user_id})
        rows = {r["id"]: r for r in await self.db.select_in(CONTRACTS, {}, [{"id": r["contract_id"]} for r in refs])}
        contracts = [(r["created_ms"], _contract(rows[r["contract_id"]])) for r in refs if r["contract_id"] in rows]
        return [c for ms, c in contracts if c.created_ms == ms]

    async def move_contract(self, contract_id: str, status: str, expect: str, now: int,
                            once: Recorded | None = None) -> bool:
        return await update_if_once(self.db, CONTRACTS, {"id": contract_id}, {"status": status, "updated_ms": now},
                                     {"status": expect}, once)

    # milestones
    async def milestones_of(self, contract_id: str) -> list[StoredMilestone]:
        """In proposal order."""
        return [_milestone(r) for r in await self.db.select(MILESTONES, {"contract_id": contract_id})]

    async def get_milestone(self, milestone_id: str) -> StoredMilestone | None:
        where = self._locations.get(milestone_id)
        if where is not None:
            rows = await self.db.select(MILESTONES, {"contract_id": where[0], "position": where[1]})
            if rows and rows[0]["id"] == milestone_id:
                return _milestone(rows[0])
            self._locations.pop(milestone_id, None)   # not there (a store emptied under us): ask the index
        row = await located(self.db, MILESTONES_BY_ID, MILESTONES, {"id": milestone_id})
        if row is None:
            return None
        self._located(milestone_id, row["contract_id"], row["position"])
        return _milestone(row)

    async def milestone_and_contract(self, milestone_id: str) -> tuple[StoredMilestone, StoredContract | None] | None:
        """The milestone and its contract: read at once when the milestone's location is known
        (one round trip's time, not two), one after the other otherwise."""
        where = self._locations.get(milestone_id)
        if where is None:
            m = await self.get_milestone(milestone_id)
            return None if m is None else (m, await self.get_contract(m.contract_id))
        contract, m = await together(self.get_contract(where[0]), self.get_milestone(milestone_id))
        if m is None:
            return None
        return m, contract if m.contract_id == where[0] else await self.get_contract(m.contract_id)

    async def milestone_among(self, milestone_id: str) -> tuple[StoredMilestone, list[StoredMilestone]] | None:
        """The milestone and all of its contract's (itself included, in proposal order): by one
        read of the contract's partition when its location is known, else the index's two."""
        where = self._locations.get(milestone_id)
        if where is None:
            m = await self.get_milestone(milestone_id)
            return None if m is None else (m, await self.milestones_of(m.contract_id))
        siblings = await self.milestones_of(where[0])
        m = next((x for x in siblings if x.id == milestone_id), None)
        if m is None:                                   # as in get_milestone: ask the index
            self._locations.pop(milestone_id, None)
            return await self.milestone_among(milestone_id)
        return m, siblings

    def _located(self, milestone_id: str, contract_id: str, position: int) -> None:
        self._locations[milestone_id] = (contract_id, position)
        self._locations.move_to_end(milestone_id)
        if len(self._locations) > LOCATIONS_KEPT:
            self._locations.popitem(last=False)

    async def move_milestone(self, m: StoredMilestone, status: str, now: int, once: Recorded | None = None,
                             **extra: Any) -> bool:
        """``m.status`` → ``status`` if the milestone is still as read (its status and
        ``updated_ms``), with ``once``, the command's answer, added to the row's inbox by the same
        lightweight transaction (:class:`MilestoneInbox`). The condition names ``updated_ms`` too,
        so a move that read the row before another move and back (IN_REVIEW → IN_PROGRESS) fails
        instead of writing an inbox that lacks the other's answer."""
        changes: dict[str, Any] = {"status": status, "updated_ms": now, **extra}
        if once is not None:
            changes["inbox"] = _inbox_json.encode(kept(m.inbox, once, now)).decode()
        return await self.db.update_if(MILESTONES, {"contract_id": m.contract_id, "position": m.position},
                                       changes, {"status": m.status, "updated_ms": m.updated_ms})

    async def note_payment_request(self, m: StoredMilestone, request_id: str) -> None:
        """The milestone's payment request id, as a plain write (no lightweight transaction):
        payments opens one request per milestone (idempotent on its id), so every writer writes
        this id."""
        await self.db.update(MILESTONES, {"contract_id": m.contract_id, "position": m.position},
                             {"payment_request_id": request_id})

    async def pay_milestone(self, m: StoredMilestone, request_id: str, now: int) -> None:
        """ACCEPTED → PAID, as a plain write: nothing moves an ACCEPTED milestone but this (the
        freelancer's moves start from OPEN or IN_PROGRESS, the client's from IN_REVIEW), and
        every repeat of it writes PAID with the milestone's one payment request."""
        assert m.status in ("ACCEPTED", "PAID")
        await self.db.update(MILESTONES, {"contract_id": m.contract_id, "position": m.position},
                             {"status": "PAID", "updated_ms": now, "payment_request_id": request_id})

    # terminations
    async def guard_termination(self, contract_id: str, requester_id: str, termination_id: str, now: int) -> str:
        """Reserve the requester's PENDING slot on the contract; returns the id holding it."""
        async def state(holder: str) -> HolderState:
            held = await self.get_termination(holder)
            return "missing" if held is None else "live" if held.status == "PENDING" else "done"
        holder, _ = await claim_slot(self.db, TERMINATION_SLOTS,
                                     {"contract_id": contract_id, "requester_id": requester_id},
                                     "termination_id", termination_id, now, state)
        return holder

    async def release_termination_guard(self, t: StoredTermination) -> None:
        await self.db.update_if(TERMINATION_SLOTS, {"contract_id": t.contract_id, "requester_id": t.requester_id},
                                {"termination_id": None}, {"termination_id": t.id})

    async def add_termination(self, t: StoredTermination) -> bool:
        await self.db.upsert(TERMINATIONS_BY_ID, {"id": t.id, "contract_id": t.contract_id})
        return await self.db.insert_if_absent(TERMINATIONS, msgspec.structs.asdict(t))

    async def get_termination(self, termination_id: str) -> StoredTermination | None:
        row = await located(self.db, TERMINATIONS_BY_ID, TERMINATIONS, {"id": termination_id})
        return _termination(row) if row else None

    async def terminations_of(self, contract_id: str) -> list[StoredTermination]:
        """Oldest first."""
        rows = await self.db.select(TERMINATIONS, {"contract_id": contract_id})
        return sorted((_termination(r) for r in rows), key=lambda t: (t.created_ms, t.id))

    async def move_termination(self, t: StoredTermination, status: str, expect: str, now: int,
                               once: Recorded | None = None) -> bool:
        return await update_if_once(self.db, TERMINATIONS, {"contract_id": t.contract_id, "id": t.id},
                                     {"status": status, "updated_ms": now}, {"status": expect}, once)


# the once commands whose first answers live in the milestone row they move (the runtime names a
# command "<service>.<request type>")
IN_MILESTONE_ROW = frozenset(f"contracts.{t.__name__}" for t in (ProgressMilestone, EvaluateMilestone))


class MilestoneInbox:
    """The contracts service's :class:`~workup.runtime.inbox.Inbox`: the ``inbox`` table for its
    ``once`` commands (``workup/storage/inbox.py``), except those of :data:`IN_MILESTONE_ROW`,
    whose answers :meth:`ContractsStore.move_milestone` writes into the milestone row. For them,
    as for the users' documents, :meth:`recall` answers ``None`` without a read: the handler
    reads the row anyway and raises :class:`~workup.runtime.inbox.Replayed` when it finds its
    key there (``milestones.py``)."""

    def __init__(self, table: DbInbox) -> None:
        self.table = table

    async def recall(self, key: OnceKey) -> Recorded | None:
        return None if key.command in IN_MILESTONE_ROW else await self.table.recall(key)

    async def remember(self, key: OnceKey, answer: Recorded) -> None:
        """Their answers are whole when recorded (an evaluation's payment request id is derived
        beforehand: :func:`payment_request_id_for`), so the runtime has nothing to replace."""
        if key.command in IN_MILESTONE_ROW:
            raise RuntimeError(f"{key.command}: its first answer is kept in the milestone row, whole")
        await self.table.remember(key, answer)
