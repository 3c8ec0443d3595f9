"""What a jobs worker process holds while it runs: the store and the read cache."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

from ...cache import Cache, open_cache
from ...runtime.inbox import Inbox
from ...runtime.service import Context
from ...settings import Settings
from ...storage import opened_store
from .store import TABLES, JobsStore

__all__ = ["JobsDeps", "Ctx", "open_jobs_deps"]


@dataclass
class JobsDeps:
    store: JobsStore
    cache: Cache
    db_pool = None     # the driver sizes its own connections: nothing for the controller
    blocking = None

    @property
    def inbox(self) -> Inbox:
        """Where the ``once`` commands' first answers are kept (``runtime/inbox.py``)."""
        return self.store.inbox


Ctx = Context[JobsDeps]


@asynccontextmanager
async def open_jobs_deps(settings: Settings) -> AsyncIterator[JobsDeps]:
    async with opened_store(settings, "jobs", TABLES, JobsStore) as store:
        # the cache is process-wide (shared with an embedded gateway): not ours to close
        yield JobsDeps(store, open_cache(settings))
