"""``/api/v1/notifications``: a WebSocket of the caller's events (docs/api.md "Notifications")."""

from __future__ import annotations

import trio
from quart import Blueprint, Response, g, websocket

from ...transport.envelope import new_request_id
from ...problems import ProblemError
from .._auth import bearer_token, caller_for_token
from .._problems import problem_response
from .._state import gateway

__all__ = ["blueprint", "PATH"]

PATH = "/api/v1/notifications"
READY_WAIT = 5.0   # seconds a handshake may wait for the hub's event subscription to be live

blueprint = Blueprint("notifications", __name__)


@blueprint.get(PATH)
async def not_upgraded() -> Response:
    problem = ProblemError(426, "this route is a WebSocket: send an Upgrade: websocket request").problem
    return problem_response(problem, {"Upgrade": "websocket", "Connection": "Upgrade"})


def _token() -> str:
    header = websocket.headers.get("Authorization")
    if header is not None:
        return bearer_token(header)
    token = websocket.args.get("token", "").strip()
    if not token:
        raise ProblemError(401, "a token is required (Authorization header or token parameter)")
    return token


@blueprint.websocket(PATH)
async def notifications() -> Response | None:
    gw = gateway()
    g.request_id = new_request_id()
    try:
        caller = await caller_for_token(_token(), gw)
    except ProblemError as exc:  # refused before the upgrade, as a plain HTTP answer
        headers = {"WWW-Authenticate": 'Bearer realm="workup"'} if exc.status == 401 else None
        return problem_response(exc.problem, headers)
    assert caller.user_id is not None
    # registered first: that starts the hub's subscription if none is live (_notification_hub.py)
    with gw.hub.subscribe(caller.user_id) as sub:
        with trio.move_on_after(READY_WAIT):
            await gw.hub.ready.wait()
        if not gw.hub.ready.is_set():
            return problem_response(ProblemError(503, "notifications are not available right now").problem)
        await websocket.accept()
        with gw.metrics.websockets.track_inprogress():
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_discard_incoming)
                async for text in sub.receive:
                    await websocket.send(text)
                if sub.overflowed:
                    await websocket.close(1013, "too many undelivered events; reconnect")
                elif sub.revoked:
                    await websocket.close(1008, "account closed")
                nursery.cancel_scope.cancel()
    return None


async def _discard_incoming() -> None:
    """Clients have nothing to say here; reading keeps quart's inbound queue from filling up
    (it would stop noticing the disconnect)."""
    while True:
        await websocket.receive()
