"""Ids and timestamps: the one copy every service uses.

- :func:`new_id`: a fresh random id (32 lowercase hex digits, a uuid4).
- :func:`derived_id`: an id fixed by what it is derived from (a request id, a proposal id, ...),
  so a redelivered command makes the very same thing again instead of a second one.
- :func:`now_ms`: the time in integer milliseconds (Cassandra's precision; the read cache's version).
- :func:`rfc3339`: such a time as shown on the wire (``2024-12-04T17:28:53.123Z``).
- :func:`utc_now`: an aware ``datetime`` for stores with timestamp columns (payments).

Derived ids live in an :class:`IdSpace`. The ids already stored were derived in three spaces
with two hash forms, and a retry must derive the id it derived before (a contract is looked up by
the id of its proposal for ever), so each space keeps its form: never change a space, add one.
New spaces are uuid5 namespaces.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import uuid

import msgspec

__all__ = ["IdSpace", "REQUEST_IDS", "CONTRACT_IDS", "USER_IDS", "new_id", "derived_id", "now_ms", "rfc3339", "utc_now"]


class IdSpace(msgspec.Struct, frozen=True):
    """A space of derived ids: a uuid5 namespace over the parts joined by ``:``; without one
    (only :data:`USER_IDS`), the first 32 hex digits of sha256 over the parts joined by U+001F."""
    namespace: uuid.UUID | None


# jobs and proposals (``derived_id(REQUEST_IDS, "job", request_id)``) and contract terminations
REQUEST_IDS = IdSpace(uuid.UUID("6f1c3a52-8a0e-4c1e-9a57-2b0f4d7e9c11"))
# a contract from its proposal id, a milestone from (contract id, position)
CONTRACT_IDS = IdSpace(uuid.UUID("0b6d2a4e-33c7-4f0e-8d5e-7c9a1e2f4b60"))
# users' accounts and list items (``derived_id(USER_IDS, request_id, "register", email_key)``)
USER_IDS = IdSpace(None)


def new_id() -> str:
    return uuid.uuid4().hex


def derived_id(space: IdSpace, *parts: str) -> str:
    """32 lowercase hex digits, the same for the same space and parts."""
    if space.namespace is None:
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return uuid.uuid5(space.namespace, ":".join(parts)).hex


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    """UTC with milliseconds and a ``Z``: the one time format of the API."""
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
