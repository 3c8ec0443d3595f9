"""The users store port: what the commands need from a database, nothing more.

Two adapters implement it (``mongo.MongoUserStore`` for MongoDB/FerretDB, ``sqlite.SqliteUserStore``
embedded) and pass one contract test suite (``tests/services/users/test_store_contract.py``). Both run their
blocking driver in threads through a bounded :class:`trio.CapacityLimiter` (:class:`Threaded`).
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Protocol, TypeVar

import msgspec
import trio

from ...ids import now_ms
from ...runtime.inbox import OnceKey, Recorded, kept, recorded_in
from .records import UserRecord

__all__ = ["UserStore", "EmailTaken", "Threaded", "DriverOps", "DriverStore", "to_document", "from_document",
           "OutboxFlag", "OUTBOX_FLAGS"]

T = TypeVar("T")
_REMEMBER_ATTEMPTS = 8

# Outbox flags: work that must follow a committed write even if the process dies right after it.
# wallet_pending: payments has not acknowledged CreateWallet; revoke_pending: the closed-account
# flag of the gateway's cache is not written yet.
OutboxFlag = Literal["wallet_pending", "revoke_pending"]
OUTBOX_FLAGS: tuple[OutboxFlag, ...] = ("wallet_pending", "revoke_pending")


class EmailTaken(Exception):
    """Another account (any role, any case) already has this email."""


class UserStore(Protocol):
    async def insert(self, user: UserRecord) -> None:
        """Store a new user (with its outbox flags, atomically). Raises :class:`EmailTaken`."""
        ...

    async def get(self, user_id: str) -> UserRecord | None: ...

    async def find_by_email(self, email: str) -> UserRecord | None:
        """Case-insensitive."""
        ...

    async def save(self, user: UserRecord) -> bool:
        """Write ``user`` if the stored version is still ``user.version`` (then bump both);
        ``False`` when someone else saved in between. Never touches the outbox flags. Raises
        :class:`EmailTaken` when the new email belongs to another account."""
        ...

    async def close(self, user_id: str, once: Recorded | None = None) -> int | None:
        """Mark the account closed and set ``revoke_pending`` (and add ``once`` to its inbox), in
        one write whatever else changed meanwhile; the new version, or ``None`` when there is no
        such user."""
        ...

    async def recall(self, key: OnceKey) -> Recorded | None:
        """Always ``None``: the row is in the caller's own document, which every ``once`` handler
        reads anyway (``modify`` raises :class:`~workup.runtime.inbox.Replayed` when it finds
        it), so a ``once`` command costs no read of its own here."""
        ...

    async def first_answer(self, key: OnceKey) -> Recorded | None:
        """The row in the inbox of ``key.owner``'s document, read now."""
        ...

    async def remember(self, key: OnceKey, answer: Recorded) -> None: ...

    async def pending(self, flag: OutboxFlag, limit: int) -> list[UserRecord]:
        """Users with the outbox ``flag`` set."""
        ...

    async def clear_pending(self, flag: OutboxFlag, user_id: str) -> None: ...

    def pool_size(self) -> int: ...

    async def resize_pool(self, size: int) -> None: ...

    async def aclose(self) -> None: ...


class Threaded:
    """Runs blocking driver calls in threads, at most ``size`` at a time."""

    def __init__(self, size: int) -> None:
        self.limiter = trio.CapacityLimiter(max(1, size))

    @property
    def size(self) -> int:
        return int(self.limiter.total_tokens)

    def resize(self, size: int) -> None:
        self.limiter.total_tokens = max(1, size)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)


def to_document(user: UserRecord) -> dict[str, Any]:
    """Plain types (dates as ISO strings), for BSON or JSON."""
    return msgspec.to_builtins(user)


def from_document(doc: dict[str, Any]) -> UserRecord:
    return msgspec.convert(doc, UserRecord)


class DriverOps(msgspec.Struct, frozen=True):
    """An adapter's blocking operations; each takes the driver handle (a connection or a
    collection) first and runs in a worker thread."""

    insert: Callable[[Any, UserRecord], None]
    find_by: Callable[[Any, str, str], UserRecord | None]   # (handle, "id" | "email_key", value)
    update: Callable[[Any, UserRecord], bool]
    close: Callable[[Any, str, Recorded | None], int | None]
    pending: Callable[[Any, str, int], list[UserRecord]]
    clear_pending: Callable[[Any, str, str], None]


class DriverStore:
    """The port's async methods on top of an adapter's :class:`DriverOps` and its ``_call``."""

    _ops: DriverOps

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        raise NotImplementedError

    async def insert(self, user: UserRecord) -> None:
        await self._call(self._ops.insert, user)

    async def get(self, user_id: str) -> UserRecord | None:
        return await self._call(self._ops.find_by, "id", user_id)

    async def find_by_email(self, email: str) -> UserRecord | None:
        return await self._call(self._ops.find_by, "email_key", email.strip().lower())

    async def save(self, user: UserRecord) -> bool:
        saved = await self._call(self._ops.update, user)
        if saved:
            user.version += 1
        return saved

    async def close(self, user_id: str, once: Recorded | None = None) -> int | None:
        return await self._call(self._ops.close, user_id, once)

    async def recall(self, key: OnceKey) -> Recorded | None:
        return None

    async def first_answer(self, key: OnceKey) -> Recorded | None:
        user = await self.get(key.owner) if key.owner else None
        return None if user is None else recorded_in(user.inbox, key.id)

    async def remember(self, key: OnceKey, answer: Recorded) -> None:
        for _ in range(_REMEMBER_ATTEMPTS):   # compare-and-set on the version, as every save
            user = await self.get(key.owner) if key.owner else None
            if user is None or await self.save(
                    msgspec.structs.replace(user, inbox=kept(user.inbox, answer, now_ms()))):
                return

    async def pending(self, flag: OutboxFlag, limit: int) -> list[UserRecord]:
        assert flag in OUTBOX_FLAGS, flag
        return await self._call(self._ops.pending, flag, limit)

    async def clear_pending(self, flag: OutboxFlag, user_id: str) -> None:
        assert flag in OUTBOX_FLAGS, flag
        await self._call(self._ops.clear_pending, flag, user_id)
