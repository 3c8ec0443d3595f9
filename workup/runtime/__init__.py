"""The service runtime: run a :class:`Service`'s commands on a transport.

``serve_service`` runs one instance (deps, background tasks, a bounded pool of worker loops, live
reconfiguration from the controller); ``load_service`` finds a service of ``workup.services`` by
name. The transports it runs on live in ``workup.transport``. ``workup worker`` puts instances
under a multi-process supervisor (``runtime.supervisor``). See ``docs/workers.md``.
"""

from __future__ import annotations

from .instance import Instance, serve_service
from .loader import UnknownService, load_service
from .service import CommandSpec, Context, Deps, Runtime, Service

__all__ = [
    "Service", "Context", "Runtime", "CommandSpec", "Deps",
    "load_service", "UnknownService", "serve_service", "Instance",
]
