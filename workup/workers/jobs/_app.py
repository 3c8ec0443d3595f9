"""The jobs :class:`Service` and its dependencies (store + cache), opened once per process."""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

from ...cache import Cache, open_cache
from ...settings import Settings
from .._service import Context, Service
from .._wide import opened_store
from ._store import TABLES, JobsStore

__all__ = ["JobsDeps", "service", "Ctx"]


@dataclass
class JobsDeps:
    store: JobsStore
    cache: Cache


@asynccontextmanager
async def open_jobs_deps(settings: Settings) -> AsyncIterator[JobsDeps]:
    async with opened_store(settings, "jobs", TABLES, JobsStore) as store:
        yield JobsDeps(store, open_cache(settings))


service: Service[JobsDeps] = Service("jobs", open_deps=open_jobs_deps)
Ctx = Context[JobsDeps]
