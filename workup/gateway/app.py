"""The gateway app factory: quart-trio, problem+json for every error, JWT auth, route modules.
The route tables' routes are served in front of quart by the lean path (``_lean.py``); quart's
hooks below serve everything else the same way (``_answer.py`` holds what both share)."""

from __future__ import annotations

import time
from typing import Any, Sequence

import msgspec
from quart import Response, g, request
from quart.sessions import NullSession, SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from ..cache import Cache
from ..logs import bind_request_id
from ..metrics import CountInFlight
from ..settings import Settings
from ..transport import RpcClient
from ..problems import ProblemError
from ._answer import REQUEST_ID_PATTERN, error_answer, observe, request_headers, request_id_from
from ._auth import ANONYMOUS, authenticate
from ._drain import DrainBody
from ._lean import LeanRoutes
from ._limits import Throttle
from ._notification_hub import NotificationHub
from ._problems import http_problem
from ._revocations import Revocations, UsersAccountCheck
from ._state import Gateway, GatewayApp
from ._tokens import TokenService
from .routes import blueprints
from .routing import mounted_routes
from .throttle import limits_from

__all__ = ["create_app", "REQUEST_ID_PATTERN"]


def create_app(settings: Settings, transport: RpcClient, cache: Cache, *, jwt_keys: Sequence[str] | str,
               request_timeout: float = 10.0, max_body: int = 1024 * 1024) -> GatewayApp:
    """The gateway as an ASGI app. ``transport`` is an RpcClient (and EventSource for the
    notifications); ``jwt_keys``: the first signs, all verify."""
    keys = [jwt_keys] if isinstance(jwt_keys, str) else list(jwt_keys)
    tokens = TokenService(keys, lifetime=settings.jwt_lifetime)
    app = GatewayApp("workup.gateway", static_folder=None)
    # body limits are the gateway's own (the before_request hook and routing.json_body), not quart's
    app.config.update(MAX_CONTENT_LENGTH=None, PROPAGATE_EXCEPTIONS=False,
                      PROVIDE_AUTOMATIC_OPTIONS=True)
    app.session_interface = _NoSessions()
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    hub = NotificationHub(transport)
    app.gw = Gateway(settings=settings, transport=transport, cache=cache, tokens=tokens,
                     revocations=Revocations(cache, UsersAccountCheck(transport)), hub=hub,
                     throttle=Throttle(cache, limits_from(settings), deployment=settings.amqp_prefix),
                     request_timeout=request_timeout, max_body=max_body)
    app.asgi_app = DrainBody(app.asgi_app)  # type: ignore[method-assign,assignment]
    # the route tables' routes take the lean path (_lean.py); the rest goes on to quart
    app.asgi_app = LeanRoutes(app.asgi_app, app.gw, lambda: mounted_routes(app),  # type: ignore[method-assign,assignment]
                              body_timeout=app.config["BODY_TIMEOUT"])
    app.asgi_app = CountInFlight(app.asgi_app, app.gw.metrics)  # type: ignore[method-assign,assignment,arg-type]
    _install_hooks(app)

    @app.before_serving
    async def _start_hub() -> None:
        app.nursery.start_soon(hub.run)

    @app.after_serving
    async def _stop_hub() -> None:
        hub.stop()

    for bp in blueprints():
        app.register_blueprint(bp)
    return app


class _NoSessions(SecureCookieSessionInterface):   # the type quart declares for the attribute
    """The API keeps no sessions (a bearer token per request): quart's cookie session, looked
    for on every request, is replaced by one shared empty session that cannot be written."""

    null_session_class = NullSession
    _null = NullSession()

    async def open_session(self, app: object, request: object) -> NullSession:
        return self._null

    async def save_session(self, app: object, session: object, response: object) -> None:
        return None


def _install_hooks(app: GatewayApp) -> None:
    gw = app.gw

    @app.before_request
    async def _begin() -> None:
        g.started = time.perf_counter()
        headers = request_headers(request.scope["headers"])
        g.request_id = request_id_from(headers.request_id)
        bind_request_id(g.request_id)   # this request's log lines name it (workup/logs.py)
        g.deadline = time.monotonic() + gw.request_timeout
        if request.routing_exception is not None:   # unknown route or method: 404/405 before auth
            raise request.routing_exception
        length = request.content_length
        if length is not None and length > gw.max_body:
            raise ProblemError(413, f"request body over {gw.max_body} bytes")
        g.caller = await authenticate(headers.authorization, gw)

    @app.after_request
    async def _finish(response: Response) -> Response:
        rid = g.get("request_id") or request_id_from(None)
        response.headers["X-Request-Id"] = rid
        response.headers["X-Content-Type-Options"] = "nosniff"
        rule = request.url_rule
        route = rule.rule if rule is not None else "<unmatched>"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        observe(gw, request.method, request.path, route, response.status_code, elapsed, rid,
                g.get("caller", ANONYMOUS))
        return response

    @app.after_websocket  # type: ignore[type-var]  # quart types the hook over its own Response union
    async def _refused_upgrade(response: Response | None) -> Response | None:
        # a WebSocket handshake answered with HTTP (401, 426, 503) is an answer like any other
        if response is not None:
            response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    async def _error(exc: Exception) -> Response:
        # the lean path answers its errors with the same error_answer (_lean.py)
        return error_answer(exc, g.get("request_id", ""), request.method, request.path).response()

    # quart picks the most specific handler: HTTPException's below, else this one
    for kind in (ProblemError, msgspec.ValidationError, Exception):
        app.register_error_handler(kind, _error)

    @app.errorhandler(HTTPException)
    async def _http(exc: HTTPException) -> Any:
        if exc.code is not None and exc.code < 400:
            return exc.get_response()
        return http_problem(exc)
