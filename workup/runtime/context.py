"""The :class:`~workup.runtime.Runtime` and :class:`~workup.runtime.Context` a handler receives.

After-reply work (:meth:`RequestContext.after_reply`, :func:`after_reply`): a handler hands over
work its reply does not depend on (noting a payment request's id on its milestone; payments'
delivery of the outbox rows its transaction wrote); the
worker loop (``instance.py``) sends the reply, runs that work, then acks the delivery. A crash
between the reply and the ack redelivers the request, the state every handler already survives
(a crash before the reply is the same one); work that fails or is cut off is only logged, since
what it would have done is left to the outbox relay. Never for what a read right after the reply
must see (cache invalidations, the ``once`` inbox's answer): those stay before the reply.
"""

from __future__ import annotations

import time
from typing import Any, Awaitable, Callable, Sequence

from ..ids import now_ms, rfc3339
from ..transport.envelope import SERVICE_CALLER, Caller, Event, reply_body
from ..problems import ProblemError
from ..settings import Settings
from ..transport import DeadlineExceeded, NoResponder, ServiceBus
from .inbox import Once
from .service import Deps

__all__ = ["ProcessRuntime", "RequestContext", "AfterReply", "after_reply"]

AfterReply = Callable[[], Awaitable[None]]


class ProcessRuntime:
    """One per worker process: the deps of the moment (``None`` while frozen), settings, and the
    transport used to call other services and publish events."""

    __slots__ = ("deps", "settings", "transport", "service")

    def __init__(self, service: str, settings: Settings, transport: ServiceBus) -> None:
        self.service = service
        self.settings = settings
        self.transport = transport
        self.deps: Deps | None = None

    async def call(self, command: str, request: object, *, timeout: float = 10.0) -> Any:
        """Call another service as ``SERVICE``. A missing or frozen service is a 503 and a late one
        a 504 :class:`ProblemError`, so a handler has one exception type to think about."""
        try:
            reply = await self.transport.call(command, request, caller=SERVICE_CALLER, timeout=timeout)
        except DeadlineExceeded:
            raise ProblemError(504, f"{command} did not answer within {timeout:.3g}s") from None
        except NoResponder:
            raise ProblemError(503, f"{command} is not available") from None
        return reply_body(reply)

    async def emit(self, type: str, recipients: Sequence[str], data: dict[str, str], *,
                   at: str | None = None) -> None:
        at = at or rfc3339(now_ms())
        await self.transport.publish_event(Event(type=type, at=at, recipients=list(recipients), data=dict(data)))


class RequestContext:
    """Per request: the process runtime plus caller, request id and deadline. Calls made while
    handling a request never outlive that request's deadline."""

    __slots__ = ("_rt", "caller", "request_id", "deadline", "once", "_after")

    def __init__(self, rt: ProcessRuntime, caller: Caller, request_id: str, deadline: float,
                 once: Once | None = None, after: list[AfterReply] | None = None) -> None:
        self._rt = rt
        self.caller = caller
        self.request_id = request_id
        self.deadline = deadline
        self.once = once
        self._after = after

    def after_reply(self, work: AfterReply) -> bool:
        """Run ``work`` after the reply is sent and before the delivery is acked (in the order
        registered); False when nobody runs after-reply work for this request (dispatched
        without a worker loop): the caller then runs it itself (:func:`after_reply`)."""
        if self._after is None:
            return False
        self._after.append(work)
        return True

    @property
    def deps(self) -> Deps | None:
        return self._rt.deps

    @property
    def settings(self) -> Settings:
        return self._rt.settings

    async def call(self, command: str, request: object, *, timeout: float = 10.0) -> Any:
        remaining = self.deadline - time.time()
        if remaining <= 0:
            raise ProblemError(504, f"no time left to call {command}")
        return await self._rt.call(command, request, timeout=min(timeout, remaining))

    async def emit(self, type: str, recipients: Sequence[str], data: dict[str, str], *,
                   at: str | None = None) -> None:
        await self._rt.emit(type, recipients, data, at=at)


async def after_reply(rt: object, work: AfterReply) -> None:
    """``work`` after the reply when ``rt`` is a request's context that can defer it, else now (a
    relay step, a test's runtime)."""
    if not (isinstance(rt, RequestContext) and rt.after_reply(work)):
        await work()
