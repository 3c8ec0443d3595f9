"""Exactly once without the client's help: the inbox of commands that are not idempotent by
what they write.

A command registered with ``@service.command(Request, once=True)`` carries its own id: the
envelope's request id (the AMQP ``message_id``), which a broker redelivery keeps
(``transport/rabbitmq.py`` re-publishes the delivery with the same ``message_id``). The runtime
(``dispatch.py``) derives a :class:`OnceKey` from it and the body's digest, asks the service's
:class:`Inbox` for the first answer recorded under that key and, when there is one, answers it
without running the handler. Otherwise the handler runs with ``ctx.once``, a :class:`Once`; it
passes ``ctx.once.record(answer)`` (a :class:`Recorded` row) to the store write that makes its
effect, which keeps the row in the same transaction or document update (the store's own
guarantee: ``docs/payments.md``, Exactly once). A store that finds the row already there (two
deliveries raced) raises :class:`Replayed` with it, and the runtime answers that instead.

The digest is part of the key because a client may choose its own ``X-Request-Id``: the same id
with another body is another command (payments' keyless inbox does the same).
"""

from __future__ import annotations

import hashlib
from typing import Protocol, Sequence, runtime_checkable

import msgspec

from ..transport.envelope import Caller, Reply, encode_json

__all__ = ["OnceKey", "Recorded", "Once", "Inbox", "HasInbox", "Replayed", "once_key", "recorded_in", "kept",
           "record", "replay", "as_recorded", "SKEW_MS", "KEEP_PER_OWNER"]

# A repeat that arrives after its request's deadline is dropped before any handler
# (``instance.py``: expired work is acked unanswered), and the deadline is signed with the request
# id (``transport/identity.py``), so a copy cannot extend it: a recorded answer is needed until
# the deadline only. The margin covers clocks that differ between the caller and the worker.
SKEW_MS = 60 * 1000
# At most this many rows inside one owner's document (users), newest kept: a bound against a
# flood of commands within one deadline, far above what one account sends in that time.
KEEP_PER_OWNER = 16


class OnceKey(msgspec.Struct, frozen=True):
    command: str      # "users.RemoveSkill"
    request_id: str   # the envelope's, kept by a redelivery
    digest: str       # of the request body: the same id with another body is another command
    owner: str        # the caller's user id ("" for none): where a per-owner store looks

    @property
    def id(self) -> str:
        return f"{self.command}:{self.request_id}:{self.digest}"


class Recorded(msgspec.Struct, frozen=True):
    """The first answer of a command, as its store keeps it."""

    key: str          # OnceKey.id
    status: int
    body: str         # the reply's JSON ("" for none)
    until_ms: int     # no repeat can arrive after this (the request's deadline + SKEW_MS)


def once_key(command: str, request_id: str, body: bytes, caller: Caller) -> OnceKey:
    return OnceKey(command, request_id, hashlib.sha256(body).hexdigest()[:16], caller.user_id or "")


class Once:
    """What a ``once`` handler gets as ``ctx.once``: the key, and the row to write with its effect."""

    __slots__ = ("key", "status", "until_ms", "recorded")

    def __init__(self, key: OnceKey, status: int, deadline: float) -> None:
        self.key = key
        self.status = status                             # the command's success status
        self.until_ms = int(deadline * 1000) + SKEW_MS
        self.recorded: Recorded | None = None            # what the handler gave its store

    def record(self, answer: object) -> Recorded:
        """The row for the answer the handler is about to give (before its effect commits)."""
        self.recorded = Recorded(self.key.id, self.status, _json(answer), self.until_ms)
        return self.recorded


def record(once: Once | None, answer: object) -> Recorded | None:
    """``ctx.once.record(answer)``, or ``None`` for a command that is not ``once`` (a handler
    shared by both kinds, or called with a test's context)."""
    return None if once is None else once.record(answer)


class Inbox(Protocol):
    """The store side, implemented by each service's store adapters."""

    async def recall(self, key: OnceKey) -> Recorded | None:
        """The first answer recorded under ``key``, if any. A store whose rows live in what the
        handler reads anyway (users: the caller's document) answers ``None`` here, without a
        read, and raises :class:`Replayed` on that read instead."""
        ...

    async def remember(self, key: OnceKey, answer: Recorded) -> None:
        """Replace the row recorded with the effect by the reply the handler finally gave (its
        answer learnt more after the commit, e.g. an accepted evaluation's payment request id)."""
        ...


@runtime_checkable
class HasInbox(Protocol):
    """Deps of a service that has ``once`` commands."""

    @property
    def inbox(self) -> Inbox: ...


class Replayed(Exception):
    """Raised by a store (or a handler) that found the command's row already written: a racing
    delivery of the same command applied it first."""

    def __init__(self, recorded: Recorded) -> None:
        super().__init__(recorded.key)
        self.recorded = recorded


# --- decisions (pure) -----------------------------------------------------------------------------

def _json(answer: object) -> str:
    return "" if answer is None else encode_json(answer).decode()


def replay(recorded: Recorded) -> Reply:
    """The reply a repeat gets: the first one, byte for byte."""
    return Reply(status=recorded.status, body=recorded.body.encode())


def as_recorded(once: Once, reply: Reply) -> Recorded | None:
    """The row to :meth:`Inbox.remember` after the handler: ``None`` when the recorded row
    already says the same, when nothing was recorded (no effect) or when the reply is a refusal."""
    if once.recorded is None or reply.status >= 400:
        return None
    final = Recorded(once.key.id, reply.status, reply.body.decode(), once.until_ms)
    return None if (final.status, final.body) == (once.recorded.status, once.recorded.body) else final


def recorded_in(rows: Sequence[Recorded], key: str) -> Recorded | None:
    for row in rows:
        if row.key == key:
            return row
    return None


def kept(rows: Sequence[Recorded], new: Recorded, now: int) -> list[Recorded]:
    """``rows`` plus ``new`` (replacing a row of the same key), without the rows no repeat can
    reach any more, at most :data:`KEEP_PER_OWNER` (the newest)."""
    fresh = [r for r in rows if r.key != new.key and r.until_ms > now]
    return [*fresh, new][-KEEP_PER_OWNER:]
