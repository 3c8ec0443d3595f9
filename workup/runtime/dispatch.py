"""One request in, one reply out: the core shared by every transport.

Before any of it, :func:`refusal` checks who sent the request: a caller assertion that does not
prove the envelope (``transport/identity.py``) is a 403 and no handler runs.

Decisions: an unknown command is a 501 problem, a deleted (disabled) one a 503, a body that does
not decode into the command's request type a 400, a :class:`ProblemError` its own problem, and
anything else a 500 whose detail names the request id; the traceback goes to the log only.
"""

from __future__ import annotations

import logging
import msgspec

from ..logs import bind_request_id
from ..transport import Request
from ..transport.envelope import Caller, Reply, ok_reply, problem_reply
from ..transport.identity import Identity, IdentityRefused
from ..problems import Problem, ProblemError
from .registry import CommandTable
from .context import ProcessRuntime, RequestContext

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
                   caller: Caller, deadline: float, request_id: str) -> Reply:
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
    ctx = RequestContext(rt, caller, request_id, deadline)
    try:
        return ok_reply(await entry.handler(ctx, request), entry.status)
    except ProblemError as exc:
        return problem_reply(exc.problem)
    except Exception:
        log.exception("request %s (%s) failed", request_id, command)
        return problem_reply(Problem(
            status=500, title="Internal Server Error",
            detail=f"internal error while handling request {request_id}"))
