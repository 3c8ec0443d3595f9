"""Timestamps (integer milliseconds, Cassandra's precision; shown as RFC 3339 UTC) and ids."""

from __future__ import annotations

import datetime as dt
import time
import uuid

__all__ = ["now_ms", "rfc3339", "derived_id"]

_NS = uuid.UUID("6f1c3a52-8a0e-4c1e-9a57-2b0f4d7e9c11")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def rfc3339(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def derived_id(request_id: str, purpose: str) -> str:
    """An id derived from the request id, so a redelivered create finds what it already made."""
    return uuid.uuid5(_NS, f"{purpose}:{request_id}").hex
