"""One request in, one reply out: the core shared by every transport.

Before any of it, :func:`refusal` checks who sent the request: a caller assertion that does not
prove the envelope (``transport/identity.py``) is a 403 and no handler runs.

Decisions: an unknown command is a 501 problem, a deleted (disabled) one a 503, a body that does
not decode into the command's request type a 400, a :class:`ProblemError` its own problem, and
anything else a 500 whose detail names the request id; the traceback goes to the log only.
A command registered with ``once=True`` is answered from its inbox when its request id and body
were applied before (``runtime/inbox.py``). ``after``: where the handler's after-reply work goes
(``context.py``); the caller runs it once the reply is sent, whatever the reply.
"""

from __future__ import annotations

import logging
import msgspec

from ..logs import bind_request_id
from ..transport import Request
from ..transport.envelope import Caller, Reply, ok_reply, problem_reply
from ..transport.identity import Identity, IdentityRefused
from ..problems import ProblemError
from .inbox import HasInbox, Inbox, Once, Replayed, as_recorded, once_key, replay
from .registry import CommandTable, Entry
from .unavailable import unavailable
from .context import AfterReply, ProcessRuntime, RequestContext

__all__ = ["dispatch", "problem", "refusal"]

log = logging.getLogger("workup.runtime")


def problem(status: int, detail: str, title: str | None = None) -> Reply:
    return problem_reply(ProblemError(status, detail, title=title).problem)


def refusal(identity: Identity, request: Request, now: float) -> Reply | None:
    """``None`` when ``request``'s caller assertion proves its envelope and body, else the 403
    problem to answer (the reason is logged and named: it tells a forger nothing it did not send)."""
    try:
        identity.check(request.assertion, request.command, request.caller, request.deadline,
                       request.request_id, request.body, now)
    except IdentityRefused as exc:
        log.warning("refused request %s (%s) as %s/%s: %s", request.request_id, request.command,
                    request.caller.user_id, request.caller.role, exc)
        return problem(403, f"caller not proven: {exc}", "Forbidden")
    return None


async def dispatch(table: CommandTable, rt: ProcessRuntime, command: str, body: bytes,
                   caller: Caller, deadline: float, request_id: str,
                   after: list[AfterReply] | None = None) -> Reply:
    bind_request_id(request_id)   # every line logged while handling it names the request
    entry = table.get(command)
    if entry is None:
        return problem(501, f"unknown command {command!r}")
    if not entry.enabled:
        return problem(503, f"command {command!r} is disabled on this instance")
    try:
        request = entry.decoder.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return problem(400, f"malformed {command} request: {exc}")
    try:
        if entry.spec.once:
            return await _once(entry, rt, request, body, caller, deadline, request_id, after)
        return ok_reply(await entry.handler(RequestContext(rt, caller, request_id, deadline, None, after), request),
                        entry.status)
    except ProblemError as exc:
        return problem_reply(exc.problem)
    except Exception as exc:
        return _failure(exc, request_id, entry.spec.name)


def _failure(exc: Exception, request_id: str, command: str) -> Reply:
    """503 when a server the service needs is away (``runtime/unavailable.py``: the client
    retries later), else 500."""
    if (reason := unavailable(exc)) is not None:
        log.warning("request %s (%s): a server is away: %s", request_id, command, exc)
        return problem(503, f"a store of this service is unavailable ({reason}); retry later")
    log.exception("request %s (%s) failed", request_id, command)
    return problem(500, f"internal error while handling request {request_id}")


async def _once(entry: Entry, rt: ProcessRuntime, request: object, body: bytes, caller: Caller,
                deadline: float, request_id: str, after: list[AfterReply] | None) -> Reply:
    """The first answer if this request id and body were applied already, else the handler with
    ``ctx.once`` (which records its answer with its effect). Failures are judged by :func:`dispatch`."""
    key = once_key(entry.spec.name, request_id, body, caller)
    inbox = _inbox_of(rt)
    if (first := await inbox.recall(key)) is not None:
        return replay(first)
    once = Once(key, entry.status, deadline)
    try:
        reply = ok_reply(await entry.handler(RequestContext(rt, caller, request_id, deadline, once, after), request),
                         entry.status)
    except Replayed as raced:   # a delivery of the same command got there first
        return replay(raced.recorded)
    if (final := as_recorded(once, reply)) is not None:
        try:
            await inbox.remember(key, final)
        except Exception as exc:   # the effect is committed: its reply goes out all the same
            log.warning("request %s (%s): fuller answer not recorded (%s); a repeat gets the first one",
                        request_id, entry.spec.name, exc)
    return reply


def _inbox_of(rt: ProcessRuntime) -> Inbox:
    if not isinstance(rt.deps, HasInbox):
        raise TypeError(f"{rt.service}: a once command needs deps with an inbox (runtime/inbox.py)")
    return rt.deps.inbox
