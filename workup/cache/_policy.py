"""Pure decisions of the versioned cache-aside (no I/O; both implementations use them).

Every stored entry carries the version of the data it was read at (a per-entity counter or
timestamp the service keeps in its store). A write (``set``) or an invalidation (``delete``, which
leaves a short-lived *tombstone*) replaces the entry only when its version is not older than the
stored one. So a reader that read version ``v`` before a writer committed ``v+1`` and invalidated
(tombstone ``v+1``) cannot put ``v`` back afterwards: a read after a successful write never sees
the old value, as long as the tombstone outlives any in-flight read (:data:`TOMBSTONE_TTL`).
"""

from __future__ import annotations

__all__ = ["TOMBSTONE_TTL", "accepts", "pack", "unpack", "check_version", "cache_key", "closed_account_key"]

TOMBSTONE_TTL = 60.0  # seconds; longer than any request deadline, so no stale read outlives it

MAX_DIGITS = 40  # versions below 10**40: counters, ms/ns timestamps, ...
_VALUE = ord(":")
_TOMBSTONE = ord("!")


def check_version(version: int) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version < 10**MAX_DIGITS:
        raise ValueError(f"cache version must be a non-negative int, got {version!r}")
    return version


def accepts(stored: int | None, incoming: int) -> bool:
    """May an entry at version ``incoming`` replace what is stored (``None``: nothing)?"""
    return stored is None or incoming >= stored


def pack(version: int, value: bytes | None) -> bytes:
    """``b"<version>:<value>"``, or ``b"<version>!"`` for a tombstone (``value is None``)."""
    if value is None:
        return b"%d!" % version
    return b"%d:%b" % (version, value)


def unpack(raw: bytes) -> tuple[int, bytes | None]:
    """Inverse of :func:`pack`; ``ValueError`` on anything else."""
    for i, byte in enumerate(raw[:MAX_DIGITS + 1]):
        if byte == _VALUE or byte == _TOMBSTONE:
            if i == 0:
                break
            version = int(raw[:i])
            return version, (raw[i + 1:] if byte == _VALUE else None)
        if not 48 <= byte <= 57:
            break
    raise ValueError("not a versioned cache entry")


def cache_key(service: str, entity: str, id: str) -> str:
    """``workup:<service>:<entity>:<id>`` (docs/gateway.md, "Cache")."""
    for part in (service, entity):
        if not part or ":" in part:
            raise ValueError(f"bad cache key part {part!r}")
    return f"workup:{service}:{entity}:{id}"


def closed_account_key(user_id: str) -> str:
    """The flag the users service sets (``set_flag``, no TTL) when an account is closed; the
    gateway refuses that user's tokens while it exists."""
    return f"workup:users:closed:{user_id}"
