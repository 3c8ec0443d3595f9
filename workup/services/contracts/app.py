"""The contracts :class:`Service` and its dependencies (store + cache), opened once per process."""

from __future__ import annotations

from ...runtime.readcache import StoreDeps, deps_opener
from ...runtime.service import Context, Service
from .store import TABLES, ContractsStore

__all__ = ["ContractsDeps", "service", "Ctx"]

ContractsDeps = StoreDeps[ContractsStore]
service: Service[ContractsDeps] = Service("contracts", open_deps=deps_opener("contracts", TABLES, ContractsStore))
Ctx = Context[ContractsDeps]
