"""The outbox: steps that must follow a committed write even if the process dies right after it.

A service writes an *intent* before (or in the same transaction as) the state change that needs a
step elsewhere (a call to a peer, a notification, a cache flag); the handler tries the step at
once, and a background relay finishes whatever is left: the process died, or the peer was away.
Every step is idempotent at its receiver, so a step done twice (handler and relay, two processes,
a crash between "delivered" and "forgotten") is harmless.

One mechanism for every service:

- :class:`Outbox`, the port a store adapts (claim, done, retry, dead). Payments' SQL table
  (:mod:`workup.services.payments.relay`), the wide-row ``outbox`` table of jobs and contracts
  (:class:`RowOutbox`) and users' document flags (:mod:`workup.services.users.relay`) adapt it.
- :class:`Relay`, a steps table a service declares (``@relay.step("accept")``) plus ONE loop
  (:meth:`Relay.run`), installed as a background task of the service.
- :func:`next_step`, ONE retry/dead-letter policy for an attempt, and :func:`next_wait`, the
  pace of the scans. Both pure.
- Event intents (:class:`EventIntent`, kind :data:`EVENT`): crash-safe notifications, published
  by the same relay through :func:`event_step`.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Generic, Literal, Protocol, Sequence, TypeVar

import msgspec
import trio

from ..problems import ProblemError
from ..ids import new_id, now_ms, rfc3339
from ..transport import DeadlineExceeded, NoResponder
from .service import Runtime

__all__ = ["Intent", "Outbox", "IntentLog", "Deletes", "IntentRows", "RowOutbox", "Schedule", "RetryLater", "Bell",
           "Relay", "Step", "next_step", "next_wait", "transient", "POLL_INTERVAL", "SAFETY_POLL", "MAX_BACKOFF",
           "MAX_DELAY", "TRANSIENT_DELAY", "JITTER",
           "EVENT", "EventCheck", "EventIntent", "event_step", "event_intent", "intend_event", "publish_event",
           "drop_event"]

D = TypeVar("D")

POLL_INTERVAL = 1.0   # seconds between scans when the last one delivered everything
SAFETY_POLL = 15.0    # a relay woken by its writes: seconds between scans for a gone process's intents
MAX_BACKOFF = 15.0    # ceiling of the wait between scans while deliveries fail
MAX_DELAY = 60.0      # ceiling of one intent's retry delay (before jitter)
# ceiling (before jitter) while the peer is only away: a restarting worker is back within seconds,
# and a longer wait is pure latency once it is (pay -> milestone PAID waited over a minute)
TRANSIENT_DELAY = 4.0
JITTER = 0.2          # a delay is scaled by 1 +- JITTER, so intents failed together do not retry together
# the peer or the way to it is away, not the request: 5xx of a gateway or a broker-side refusal,
# timeouts, throttling (rt.call turns NoResponder/DeadlineExceeded into 503/504)
_TRANSIENT_STATUS = frozenset({408, 429, 502, 503, 504})
BATCH = 20            # intents of one kind claimed (and attempted concurrently) per scan
EVENT = "event"

_log = logging.getLogger("workup.runtime.outbox")


# --- the port -------------------------------------------------------------------------------------

class Intent(msgspec.Struct, frozen=True):
    """One step still to do, as a store hands it to the relay."""
    kind: str                 # which step (a key of the relay's steps table)
    item: str                 # what the step needs: an id, or a JSON payload
    key: str = ""             # the adapter's own handle for done/retry/dead (a row number, say)
    attempts: int = 0         # failed attempts so far
    created_ms: int = 0       # when the intent was written (0: unknown, never too young)
    name: str = ""            # the peer command or event type, when the store keeps it apart


class Outbox(Protocol):
    """What the relay needs from a store's outbox."""

    async def claim(self, kind: str, limit: int) -> list[Intent]:
        """Up to ``limit`` intents of ``kind`` due now; an adapter shared by processes leases them."""
        ...

    async def done(self, intent: Intent) -> None:
        """The step succeeded (or has nothing left to do): forget the intent. Idempotent."""
        ...

    async def retry(self, intent: Intent, delay: float, error: str) -> None:
        """Not now: offer the intent again in ``delay`` seconds, one more attempt counted."""
        ...

    async def dead(self, intent: Intent, error: str) -> None:
        """Refused for good: never offer it again (kept for an operator where the store can)."""
        ...


class RetryLater(Exception):
    """A step that reports failure by value (a peer or the cache is away) raises this to be retried."""


def transient(error: BaseException) -> bool:
    """Whether ``error`` says the peer (or the way to it) is away rather than that the step is wrong."""
    if isinstance(error, ProblemError):
        return error.status in _TRANSIENT_STATUS
    return isinstance(error, (RetryLater, DeadlineExceeded, NoResponder, OSError, trio.BrokenResourceError,
                              trio.ClosedResourceError, trio.TooSlowError))


def next_step(error: BaseException | None, attempts: int,
              jitter: float = 0.5) -> tuple[Literal["done", "retry", "dead"], float]:
    """``("done", 0)``, ``("retry", delay)`` or ``("dead", 0)`` after one attempt that failed
    ``attempts`` times before. A receiver's 4xx (other than timeout/too-many) will not change on
    retry: dead; anything else is retried with exponential backoff from 0.5 s, up to
    :data:`TRANSIENT_DELAY` when the peer is only away (:func:`transient`: 503, 504, 408, 429,
    502, transport errors, :class:`RetryLater`), up to :data:`MAX_DELAY` otherwise (a 500, a
    bug). ``jitter`` in [0, 1] (the relay draws it at random) scales the delay by 1 ± :data:`JITTER`;
    0.5 leaves it exact."""
    if error is None:
        return "done", 0.0
    if isinstance(error, ProblemError) and 400 <= error.status < 500 and error.status not in (408, 429):
        return "dead", 0.0
    ceiling = TRANSIENT_DELAY if transient(error) else MAX_DELAY
    base = min(ceiling, 0.5 * 2 ** min(attempts, 32))   # min: 2 ** 1000 would overflow a float product
    return "retry", base * (1 + JITTER * (2 * min(max(jitter, 0.0), 1.0) - 1))


def next_wait(failed: bool, previous: float, poll: float = POLL_INTERVAL) -> float:
    """Scan every ``poll`` seconds while deliveries succeed; double the wait (bounded) while they
    fail, so a peer that is down is not hammered at every scan."""
    return min(max(MAX_BACKOFF, poll), max(poll, previous * 2)) if failed else poll


# --- the relay ------------------------------------------------------------------------------------

StepFn = Callable[[Runtime[D], Intent], Awaitable[None]]


@dataclass(frozen=True)
class Step(Generic[D]):
    kind: str
    run: StepFn[D]            # returns when done; raises to be judged by next_step
    ordered: bool = False     # attempted one at a time in claim order (events: announced in order)


class Bell:
    """Rung by a handler that just wrote intents: the relay scans now rather than at the next poll.
    :meth:`ring_at`: intents left to the relay that are due later (a handler's failed delivery,
    rows held for a writer that may have died): the relay scans now and again then."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._due: list[float] = []

    def ring(self) -> None:
        self._event.set()

    def ring_at(self, when: float) -> None:
        """Also scan at trio time ``when``."""
        self._due.append(when)
        self._event.set()

    def _take_due(self) -> list[float]:
        due, self._due = self._due, []
        return due

    def _rearm(self) -> trio.Event:
        self._event = trio.Event()
        return self._event


@dataclass
class Relay(Generic[D]):
    """A service's steps table and the one loop that runs it. Declared next to the steps::

        RELAY: Relay[JobsDeps] = Relay(outbox=lambda deps: RowOutbox(deps.store.outbox))
        service.background_task(RELAY.run)

        @RELAY.step("accept")
        async def finish_accept(rt: Runtime[JobsDeps], intent: Intent) -> None: ...

    ``grace_ms``: intents younger than this belong to a live handler and are left alone.
    ``deletes``: the store's gathered deletes (:class:`Deletes`), whose loop this task runs too.
    ``bell``: the deps' :class:`Bell`, when handlers ring one. ``idle_poll``: with a bell, the
    wait after a clean scan (the safety net; default ``poll``). ``held``: seconds the store keeps
    a new intent from every relay (payments: its writer delivers it); the loop scans again that
    long after it starts, for what a predecessor killed before delivering left."""

    outbox: Callable[[D], Outbox]
    poll: float = POLL_INTERVAL
    grace_ms: int = 0
    bell: Callable[[D], Bell] | None = None
    idle_poll: float | None = None
    held: float = 0.0
    deletes: Callable[[D], Deletes] | None = None
    log: logging.Logger = _log
    steps: dict[str, Step[D]] = field(default_factory=dict)

    def step(self, kind: str, *, ordered: bool = False) -> Callable[[StepFn[D]], StepFn[D]]:
        """Register the step of ``kind``. Kinds are scanned in registration order; the intents of
        an ``ordered`` kind are attempted one at a time in claim order, the others concurrently."""
        def register(fn: StepFn[D]) -> StepFn[D]:
            if kind in self.steps:
                raise ValueError(f"outbox step {kind!r} registered twice")
            self.steps[kind] = Step(kind, fn, ordered)
            return fn
        return register

    async def run(self, rt: Runtime[D]) -> None:
        """The background task: scan, attempt, wait (or until the bell rings), forever. A failure
        of the scan itself (a store outage) is logged and retried, never fatal.

        A ring means an intent was just written; it is the relay's only once its writer's
        ``grace_ms`` is over, so the scan waits that long (never past the wait it interrupts).
        With a bell and ``idle_poll``, a clean scan waits ``idle_poll``: the writes wake the
        relay, and the slow poll is only the safety net for intents written by a process that is
        gone; such a wait ends early when an intent the loop saw (too young, or retried later)
        is due."""
        if self.deletes is None:
            await self._run(rt)
            return
        async with trio.open_nursery() as nursery:
            # a forgotten intent must be gone well before a relay may take it for unfinished
            nursery.start_soon(self.deletes(rt.deps).run, self.grace_ms / 4000 if self.grace_ms else None)
            await self._run(rt)

    async def _run(self, rt: Runtime[D]) -> None:
        outbox = self.outbox(rt.deps)
        bell = self.bell(rt.deps) if self.bell else None
        wait = self.poll
        retries: list[float] = []           # trio times at which intents retried by this loop are due
        if self.held:
            retries.append(trio.current_time() + self.held)   # what was written before we started
        while True:
            rung = bell._rearm() if bell else trio.Event()   # a ring from now on wakes the wait below
            try:
                claimed, failed, due_in = await self._scan(rt, outbox, retries)
            except Exception:
                self.log.exception("outbox relay scan failed; retrying")
                claimed, failed, due_in = 0, True, None
            if bell:
                retries.extend(bell._take_due())
            if claimed >= BATCH and not failed:
                continue                                      # more may be waiting
            wait = next_wait(failed, wait, self.poll)
            now = trio.current_time()
            retries[:] = [t for t in retries if t > now]
            # an intent this loop retried is tried again when due, however far the scans backed off
            deadline = min([now + wait, *retries])
            if bell and self.idle_poll is not None and not failed:
                # woken by the writes: the slow poll, or the first intent this loop knows is due
                deadline = min([now + self.idle_poll, *retries, *([] if due_in is None else [now + due_in])])
            with trio.move_on_at(deadline):
                await rung.wait()
                await trio.sleep(self.grace_ms / 1000)

    async def once(self, rt: Runtime[D], outbox: Outbox) -> tuple[int, bool]:
        """One scan of every kind: ``(claimed, any attempt failed)``."""
        claimed, failed, _ = await self._scan(rt, outbox, [])
        return claimed, failed

    async def _scan(self, rt: Runtime[D], outbox: Outbox, retries: list[float]) -> tuple[int, bool, float | None]:
        """:meth:`once`, plus the seconds until the first intent it left for its grace is due;
        the trio times of the retries it scheduled are added to ``retries``."""
        claimed, failed = 0, False
        now = now_ms()
        young: list[int] = []
        for kind, step in self.steps.items():
            due = []
            for i in await outbox.claim(kind, BATCH):
                age = now - i.created_ms
                if age >= self.grace_ms:
                    due.append(i)
                else:
                    young.append(self.grace_ms - age)
            claimed += len(due)
            failed = not await self._attempt_all(rt, outbox, step, due, retries) or failed
        return claimed, failed, (min(young) / 1000 if young else None)

    async def deliver(self, rt: Runtime[D], outbox: Outbox, intents: Sequence[Intent]) -> list[float]:
        """Attempt intents a handler holds (it just wrote them, no relay may claim them) as a scan
        would: kinds in registration order, an ``ordered`` kind one at a time, each judged by
        :func:`next_step` and reported to ``outbox``. Returns the trio times at which the
        attempts that failed are due again (empty when none failed, or all for good)."""
        retries: list[float] = []
        for kind, step in self.steps.items():
            await self._attempt_all(rt, outbox, step, [i for i in intents if i.kind == kind], retries)
        return retries

    async def _attempt_all(self, rt: Runtime[D], outbox: Outbox, step: Step[D], due: Sequence[Intent],
                           retries: list[float]) -> bool:
        """Attempt the ``due`` intents of one step; whether every attempt succeeded."""
        outcomes: list[bool] = []
        if step.ordered:
            for intent in due:
                await self._attempt(rt, outbox, step, intent, outcomes, retries)
        else:
            async with trio.open_nursery() as n:
                for intent in due:
                    n.start_soon(self._attempt, rt, outbox, step, intent, outcomes, retries)
        return all(outcomes)

    async def _attempt(self, rt: Runtime[D], outbox: Outbox, step: Step[D], intent: Intent,
                       outcomes: list[bool], retries: list[float]) -> None:
        error: BaseException | None = None
        try:
            await step.run(rt, intent)
        except Exception as exc:          # noqa: BLE001 - every failure is judged by next_step
            error = exc
        verdict, delay = next_step(error, intent.attempts, random.random())
        outcomes.append(verdict == "done")
        if verdict == "done":
            await outbox.done(intent)
        elif verdict == "dead":
            self.log.error("outbox %s %s refused for good: %s", intent.kind, intent.key or intent.item, error)
            await outbox.dead(intent, str(error))
        else:
            self.log.warning("outbox %s %s not done (attempt %d), retrying in %.1fs: %s", intent.kind,
                             intent.key or intent.item, intent.attempts + 1, delay, error)
            await outbox.retry(intent, delay, str(error))
            retries.append(trio.current_time() + delay)


# --- adapters' shared parts -----------------------------------------------------------------------

class Schedule:
    """The retry state of intents whose store keeps no attempt count nor due time (the wide-row
    table, users' flags): kept in the process. A restart forgets it, so the intents are simply
    tried again at once; a dead one is parked until then."""

    def __init__(self) -> None:
        self._attempts: dict[tuple[str, str], int] = {}
        self._due: dict[tuple[str, str], float] = {}
        self._dead: set[tuple[str, str]] = set()

    def intent(self, kind: str, item: str, created_ms: int = 0) -> Intent | None:
        """The :class:`Intent` to offer now, or ``None`` while it waits for its retry or is dead."""
        key = (kind, item)
        if key in self._dead or self._due.get(key, 0.0) > time.monotonic():
            return None
        return Intent(kind=kind, item=item, key=item, attempts=self._attempts.get(key, 0), created_ms=created_ms)

    def forget(self, intent: Intent) -> None:
        key = (intent.kind, intent.item)
        self._attempts.pop(key, None)
        self._due.pop(key, None)

    def retry(self, intent: Intent, delay: float) -> None:
        key = (intent.kind, intent.item)
        self._attempts[key] = intent.attempts + 1
        self._due[key] = time.monotonic() + delay

    def dead(self, intent: Intent) -> None:
        self.forget(intent)
        self._dead.add((intent.kind, intent.item))

    def held(self, kind: str) -> int:
        """How many intents of ``kind`` may be held back (an upper bound): a claim reads that many
        more, so held ones never crowd due ones out of a batch."""
        return sum(k == kind for k, _ in self._due) + sum(k == kind for k, _ in self._dead)

    def keep_only(self, kind: str, items: set[str]) -> None:
        """Forget the state of intents of ``kind`` gone from the store (finished by a handler)."""
        for table in (self._attempts, self._due):
            for key in [k for k in table if k[0] == kind and k[1] not in items]:
                del table[key]
        self._dead = {k for k in self._dead if k[0] != kind or k[1] in items}


class IntentLog(Protocol):
    """A store whose handlers write intents themselves, before the write that needs them."""

    async def add(self, kind: str, item: str, now: int) -> None: ...

    async def add_all(self, intents: Sequence[tuple[str, str]], now: int) -> None:
        """Several ``(kind, item)`` intents, all written when it returns, in one round trip."""
        ...

    def forget(self, kind: str, item: str) -> None:
        """Forget an intent whose step succeeded, without waiting (``storage.Outbox``: the
        deletes of a moment go together)."""
        ...

    async def done(self, kind: str, item: str) -> None: ...


class Deletes(Protocol):
    """The deletes a store gathers and sends together (``storage.DeleteLater``: forgotten
    intents, stale index rows); its loop runs beside the relay's."""

    async def run(self, within: float | None = None) -> None:
        """Forever: send what was asked, each delete within ``within`` seconds at the latest."""
        ...


class IntentRows(Protocol):
    """Intents listed by kind and forgotten by ``(kind, item)``: ``storage.Outbox`` (the jobs and
    contracts table), users' flags."""

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        """``(item, created_ms)`` of the intents of ``kind`` (``created_ms`` 0 when not kept)."""
        ...

    async def done(self, kind: str, item: str, created_ms: int) -> None:
        """Delete an intent, as :meth:`pending` listed it."""
        ...


class RowOutbox:
    """:class:`Outbox` over :class:`IntentRows`; retries are scheduled in the process."""

    def __init__(self, rows: IntentRows) -> None:
        self.rows = rows
        self.schedule = Schedule()

    async def claim(self, kind: str, limit: int) -> list[Intent]:
        read = limit + self.schedule.held(kind)
        rows = await self.rows.pending(kind, read)
        if len(rows) < read:                  # the whole kind was read: drop the state of the gone
            self.schedule.keep_only(kind, {item for item, _ in rows})
        found = (self.schedule.intent(kind, item, created) for item, created in rows)
        return [i for i in found if i is not None][:limit]

    async def done(self, intent: Intent) -> None:
        await self.rows.done(intent.kind, intent.item, intent.created_ms)
        self.schedule.forget(intent)

    async def retry(self, intent: Intent, delay: float, error: str) -> None:
        self.schedule.retry(intent, delay)

    async def dead(self, intent: Intent, error: str) -> None:
        self.schedule.dead(intent)


# --- event intents --------------------------------------------------------------------------------
# Notification events that a process dying between a state change and its publish cannot lose.
# Where the store has transactions (payments) the event row is written in the same transaction as
# the change. Elsewhere an emit site records the event with :func:`intend_event` *before* its
# conditional write; after the write applied it publishes the event and drops the intent
# (:func:`publish_event`), and when the write did not apply it drops it unpublished
# (:func:`drop_event`). An intent left behind is finished by the relay's :func:`event_step`:
# published when the store shows the change happened (the entity named in ``check`` is in one of
# its ``statuses``), dropped otherwise. So every applied change is announced at least once; twice
# only if a process died after publishing and before dropping.

class EventCheck(msgspec.Struct, frozen=True):
    """How the relay tells whether the change behind an event happened: ``entity`` (a kind the
    service knows, e.g. "milestone") with id ``id`` is now in one of ``statuses``."""
    entity: str
    id: str
    statuses: tuple[str, ...]


class EventIntent(msgspec.Struct, frozen=True, kw_only=True):
    """``type`` may be left out of the payload when the store keeps it apart (:attr:`Intent.name`);
    ``check`` is ``None`` when the event was written in the same transaction as its change."""
    type: str = ""
    recipients: list[str]
    data: dict[str, str]
    id: str = ""
    at: str | None = None
    check: EventCheck | None = None


_encode = msgspec.json.Encoder()
_decode = msgspec.json.Decoder(EventIntent)

# (runtime, entity, id) -> the entity's status now, None if absent
Status = Callable[[Runtime[D], str, str], Awaitable[str | None]]


def event_step(status_of: Status[D] | None = None) -> StepFn[D]:
    """The relay step of :data:`EVENT` intents: publish the event unless its ``check`` shows the
    change never happened. An undecodable payload is refused for good (dead)."""
    async def publish(rt: Runtime[D], intent: Intent) -> None:
        try:
            event = _decode.decode(intent.item)
        except msgspec.MsgspecError:
            raise ProblemError(422, f"undecodable event intent: {intent.item[:200]}") from None
        check = event.check
        if check is not None and (status_of is None or await status_of(rt, check.entity, check.id) not in check.statuses):
            return                         # the change never applied: nothing to announce
        await rt.emit(event.type or intent.name, event.recipients, event.data, at=event.at)
    return publish


def event_intent(type: str, recipients: Sequence[str], data: dict[str, str], check: EventCheck,
                 now: int) -> tuple[EventIntent, str]:
    """The intent of an event announced at ``now``, and the item that stores it (kind
    :data:`EVENT`): for a store that writes it in a batch of its own, beside the change."""
    intent = EventIntent(id=new_id(), type=type, at=rfc3339(now), recipients=list(recipients),
                         data=dict(data), check=check)
    return intent, _encode.encode(intent).decode()


async def intend_event(outbox: IntentLog, type: str, recipients: Sequence[str], data: dict[str, str],
                       check: EventCheck, *, also: Sequence[tuple[str, str]] = ()) -> EventIntent:
    """Record the event before the write that makes it true; ``also``: the step's other intents
    (``(kind, item)``), recorded in the same round trip."""
    now = now_ms()
    intent, item = event_intent(type, recipients, data, check, now)
    if also:
        await outbox.add_all([(EVENT, item), *also], now)
    else:
        await outbox.add(EVENT, item, now)
    return intent


async def publish_event(rt: Runtime[object], outbox: IntentLog, intent: EventIntent) -> bool:
    """After the write applied: announce it, then forget the intent (:meth:`IntentLog.forget`:
    deleted within a moment, with the others of that moment; the relay leaves an intent younger
    than its ``grace_ms`` alone, so the delete is never raced by a second publish in the normal
    case). A publish that fails (the broker is away) is logged and left to the relay: the change
    itself succeeded."""
    try:
        await rt.emit(intent.type, intent.recipients, intent.data, at=intent.at)
    except Exception as exc:
        _log.warning("event %s not published yet (%s); the relay retries", intent.type, exc)
        return False
    outbox.forget(EVENT, _encode.encode(intent).decode())
    return True


async def drop_event(outbox: IntentLog, intent: EventIntent) -> None:
    """The write did not apply (or the event went out): nothing left to announce."""
    await outbox.done(EVENT, _encode.encode(intent).decode())
