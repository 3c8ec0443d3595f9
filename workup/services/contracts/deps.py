"""What a contracts worker process holds while it runs: the store and the read cache."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

from ...cache import Cache, open_cache
from ...runtime.inbox import Inbox
from ...runtime.service import Context
from ...settings import Settings
from ...storage import opened_store
from .store import TABLES, ContractsStore

__all__ = ["ContractsDeps", "Ctx", "open_contracts_deps"]


@dataclass
class ContractsDeps:
    store: ContractsStore
    cache: Cache
    db_pool = None     # the driver sizes its own connections: nothing for the controller
    blocking = None

    @property
    def inbox(self) -> Inbox:
        """Where the ``once`` commands' first answers are kept (``runtime/inbox.py``)."""
        return self.store.inbox


Ctx = Context[ContractsDeps]


@asynccontextmanager
async def open_contracts_deps(settings: Settings) -> AsyncIterator[ContractsDeps]:
    async with opened_store(settings, "contracts", TABLES, ContractsStore) as store:
        # the cache is process-wide (shared with an embedded gateway): not ours to close
        yield ContractsDeps(store, open_cache(settings))
