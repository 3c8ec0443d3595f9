"""The service runtime: run a :class:`Service`'s commands on a transport.

``serve_service`` runs one instance (deps, background tasks, a bounded pool of worker loops, live
reconfiguration from the controller); ``LocalTransport`` is the in-process broker of ``workup up``
and of handler tests; ``AmqpTransport`` runs the same over RabbitMQ. ``workup worker`` puts
instances under a multi-process supervisor. See ``docs/workers.md``.
"""

from __future__ import annotations

from typing import Any

from ._loader import UnknownService, load_service
from ._local import LocalTransport
from ._serve import Instance, serve_service
from ._service import CommandSpec, Context, Deps, Runtime, Service

__all__ = [
    "Service", "Context", "Runtime", "CommandSpec", "Deps",
    "load_service", "UnknownService", "LocalTransport", "AmqpTransport", "serve_service", "Instance",
]


def __getattr__(name: str) -> Any:
    # imported on use, so the in-process half never loads the AMQP client
    if name == "AmqpTransport":
        from ._amqp import AmqpTransport
        return AmqpTransport
    raise AttributeError(name)
