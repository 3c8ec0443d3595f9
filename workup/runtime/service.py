"""How a service declares its commands; the runtime (``workup.runtime``) runs them.

A service is a package of ``workup.services``. Its ``__init__.py`` builds the one
:class:`Service` and then imports its command modules, whose decorators fill the table::

    # services/jobs/__init__.py
    service: Service[JobsDeps] = Service("jobs", open_deps=open_jobs_deps)
    from . import jobs, proposals  # noqa: E402  (their @service.command decorators)

    # services/jobs/jobs.py
    from . import service

    @service.command(CreateJob, status=201)
    async def create_job(ctx: Context[JobsDeps], req: CreateJob) -> Job:
        ...

The command's name is ``"<service>.<RequestStruct>"`` (``"jobs.CreateJob"``). A handler returns
the reply body (a msgspec struct, list, dict or ``None``) or raises
:class:`workup.problems.ProblemError`; anything else it raises becomes a logged 500 with the
request id and no stack trace. ``open_deps(settings)`` (``services/<svc>/deps.py``) is an async
context manager that yields the service's resources (store, cache, ...) as one object that
satisfies :class:`Deps`; the runtime enters it once per worker process, leaves it on
``freeze``/shutdown and enters it again on ``start``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncContextManager, Awaitable, Callable, Generic, Protocol, Sequence, TypeVar, cast

import trio

from ..transport.envelope import Caller
from .inbox import Once
from ..settings import Settings

__all__ = ["Service", "CommandSpec", "Context", "Runtime", "Deps", "DbPool"]

# What open_deps yields (None: no deps). Covariant, so that a Service[JobsDeps] is a
# Service[Deps | None], the one type the runtime runs.
D = TypeVar("D", bound="Deps | None", covariant=True)
D_co = TypeVar("D_co", covariant=True)
R = TypeVar("R")   # a command's request struct


class DbPool(Protocol):
    """A database connection pool the controller sizes (``set-max-db-connections``, ``status``)."""

    def pool_size(self) -> int: ...
    async def resize_pool(self, size: int) -> None: ...


class Deps(Protocol):
    """What the runtime asks of a service's deps: its database pool, and the limiter of its
    blocking driver calls, which follows ``set-max-threads`` besides the command limiter;
    ``None`` where the service has no such thing."""

    @property
    def db_pool(self) -> DbPool | None: ...
    @property
    def blocking(self) -> trio.CapacityLimiter | None: ...


class Runtime(Protocol[D_co]):
    """What a running service process offers to handlers and background tasks."""

    @property
    def deps(self) -> D_co: ...
    @property
    def settings(self) -> Settings: ...

    async def call(self, command: str, request: object, *, timeout: float = 10.0) -> Any:
        """Call another service as ``SERVICE``; returns the decoded JSON body (as msgspec decodes
        it, hence ``Any``) or raises ProblemError."""
        ...

    async def emit(self, type: str, recipients: Sequence[str], data: dict[str, str], *,
                   at: str | None = None) -> None:
        """Publish a notification event on ``workup.events`` (``at``: when it happened, default now)."""
        ...


class Context(Runtime[D_co], Protocol[D_co]):
    """A :class:`Runtime` plus the request being handled."""

    @property
    def caller(self) -> Caller: ...
    @property
    def request_id(self) -> str: ...
    @property
    def deadline(self) -> float: ...
    @property
    def once(self) -> Once | None:
        """For a command registered with ``once=True``: the row its effect's write records
        (``runtime/inbox.py``); ``None`` for every other command."""
        ...


# As the command table holds them. One table mixes commands of many request types, so the
# request is erased to `object` and the context to the runtime's own view of the deps;
# Service.command checks each handler against its own request type and deps, and the entry's
# decoder, built from that same request type, makes what the handler is called with. A handler
# returns the reply body (a msgspec struct, list, dict or None).
Handler = Callable[["Context[Deps | None]", object], Awaitable[object]]
Background = Callable[["Runtime[Deps | None]"], Awaitable[None]]


@dataclass(frozen=True)
class CommandSpec:
    name: str              # "jobs.CreateJob"
    request_type: type
    handler: Handler
    status: int = 200      # success status of the reply
    once: bool = False     # not idempotent by what it writes: applied once per request id (inbox.py)


@dataclass
class Service(Generic[D]):
    name: str
    open_deps: Callable[[Settings], AsyncContextManager[D]] | None = None
    commands: dict[str, CommandSpec] = field(default_factory=dict)
    background: list[Background] = field(default_factory=list)

    def command(self, request_type: type[R], *, status: int = 200, once: bool = False
                ) -> Callable[[Callable[[Context[D], R], Awaitable[object]]], Callable[[Context[D], R], Awaitable[object]]]:
        """Register ``async def handler(ctx: Context[D], req: R) -> reply`` as ``<service>.<R>``.
        ``once=True``: a repeat of the same request id and body gets the first answer without
        running the handler, which writes ``ctx.once.record(answer)`` with its effect (the deps
        then satisfy :class:`~workup.runtime.inbox.HasInbox`). Reads and commands idempotent by
        what they write leave it off and pay nothing."""
        def register(handler: Callable[[Context[D], R], Awaitable[object]]) -> Callable[[Context[D], R], Awaitable[object]]:
            name = f"{self.name}.{request_type.__name__}"
            if name in self.commands:
                raise ValueError(f"command {name} registered twice")
            # erased as the table holds it (see Handler): checked above, decoded into an R
            self.commands[name] = CommandSpec(name, request_type, cast(Handler, handler), status, once)
            return handler
        return register

    def background_task(self, task: Callable[[Runtime[D]], Awaitable[None]]
                        ) -> Callable[[Runtime[D]], Awaitable[None]]:
        """``async def task(runtime: Runtime[D])`` run in every worker process while it is not
        frozen (outbox relays and the like); cancelled on freeze and shutdown."""
        # erased as the list holds it (see Background): the runtime's deps are this service's
        self.background.append(cast(Background, task))
        return task
