"""What a users worker process holds while it runs: the store, the cache and the hashing lane."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import AsyncIterator

import trio

from ...cache import Cache, open_cache
from ...ids import new_id, now_ms, rfc3339
from ...runtime.inbox import Inbox
from ...runtime.service import Context, DbPool
from ...settings import Settings
from .passwords import DUMMY_HASH, hash_password, verify_password
from .records import UserRecord, email_key
from .store import EmailTaken, UserStore

__all__ = ["UsersDeps", "Ctx", "open_users_deps", "open_store", "ensure_admin"]

log = logging.getLogger("workup.users")

# One hashing thread per process: scrypt releases the GIL, so more threads would let one process
# take every core; processes (``--processes N``) are the unit of CPU scale-out instead.
HASH_THREADS = 1


@dataclass
class UsersDeps:
    store: UserStore
    cache: Cache
    hashing: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(HASH_THREADS))

    async def hash(self, password: str) -> str:
        return await trio.to_thread.run_sync(hash_password, password, limiter=self.hashing)

    async def verify(self, password: str, stored: str | None) -> bool:
        """``stored=None`` (unknown account) still costs one full hash, then fails."""
        ok = await trio.to_thread.run_sync(verify_password, password, stored or DUMMY_HASH, limiter=self.hashing)
        return ok and stored is not None

    @property
    def db_pool(self) -> DbPool:
        """The store's connection pool, which ``set-max-db-connections`` sizes."""
        return self.store

    blocking = None   # the hashing lane stays at HASH_THREADS whatever set-max-threads says

    @property
    def inbox(self) -> Inbox:
        """The ``once`` commands' first answers: in the caller's own document (``runtime/inbox.py``)."""
        return self.store


Ctx = Context[UsersDeps]


async def open_store(settings: Settings) -> UserStore:
    """MongoDB when ``users_mongo_url`` is set, else SQLite in ``<data_dir>/users.sqlite3``."""
    if settings.users_mongo_url:
        from .mongo import MongoUserStore
        return await MongoUserStore.open(settings.users_mongo_url)
    from .sqlite import SqliteUserStore
    return await SqliteUserStore.open(settings.data_path / "users.sqlite3")


async def ensure_admin(deps: UsersDeps, email: str, password: str) -> None:
    """Create the admin account, or bring its password up to date. Several processes may race
    here; the unique email index lets exactly one insert win."""
    user = await deps.store.find_by_email(email)
    if user is None:
        admin = UserRecord(id=new_id(), email=email, email_key=email_key(email), role="ADMIN",
                           password_hash=await deps.hash(password), name="Administrator", created_at=rfc3339(now_ms()))
        try:
            await deps.store.insert(admin)
            log.info("admin account %s created", email)
        except EmailTaken:
            pass
    elif user.role != "ADMIN":
        log.error("WORKUP_ADMIN_EMAIL %s belongs to a %s account; no admin ensured", email, user.role)
    elif user.closed or not await deps.verify(password, user.password_hash):
        user.password_hash = await deps.hash(password)
        user.closed = False
        if await deps.store.save(user):
            log.info("admin account %s updated", email)


@asynccontextmanager
async def open_users_deps(settings: Settings) -> AsyncIterator[UsersDeps]:
    store = await open_store(settings)
    try:
        # the cache is process-wide (shared with an embedded gateway): not ours to close
        deps = UsersDeps(store=store, cache=open_cache(settings))
        if settings.admin_email and settings.admin_password:
            await ensure_admin(deps, settings.admin_email, settings.admin_password)
        yield deps
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()
