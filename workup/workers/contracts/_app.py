"""The contracts :class:`Service` and its dependencies (store + cache), opened once per process."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

from ...cache import Cache, open_cache
from ...settings import Settings
from .._service import Context, Service
from .._wide import opened_store
from ._store import TABLES, ContractsStore

__all__ = ["ContractsDeps", "service", "Ctx"]


@dataclass
class ContractsDeps:
    store: ContractsStore
    cache: Cache


@asynccontextmanager
async def open_contracts_deps(settings: Settings) -> AsyncIterator[ContractsDeps]:
    async with opened_store(settings, "contracts", TABLES, ContractsStore) as store:
        yield ContractsDeps(store, open_cache(settings))


service: Service[ContractsDeps] = Service("contracts", open_deps=open_contracts_deps)
Ctx = Context[ContractsDeps]
