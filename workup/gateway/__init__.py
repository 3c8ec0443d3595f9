"""The HTTP API gateway: JWT auth, validation, RPC to the services, cache, notifications.

Route tables use :mod:`workup.gateway.routing`; servers use :func:`create_app`.
"""

from ._tokens import InvalidToken, TokenService, jwt_keys_from
from ._server import run_until_stopped, serve_app, settle_heap, until_signalled
from ._state import GatewayApp
from .app import create_app

__all__ = ["create_app", "serve_app", "run_until_stopped", "settle_heap", "until_signalled", "GatewayApp",
           "TokenService", "InvalidToken", "jwt_keys_from"]
