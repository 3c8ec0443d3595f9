"""The jobs :class:`Service` and its dependencies (store + cache), opened once per process."""

from __future__ import annotations

from ...runtime.readcache import StoreDeps, deps_opener
from ...runtime.service import Context, Service
from .store import TABLES, JobsStore

__all__ = ["JobsDeps", "service", "Ctx"]

JobsDeps = StoreDeps[JobsStore]
service: Service[JobsDeps] = Service("jobs", open_deps=deps_opener("jobs", TABLES, JobsStore))
Ctx = Context[JobsDeps]
