"""The HTTP API gateway: JWT auth, validation, RPC to the services, cache, notifications.

Route tables use :mod:`workup.gateway.routing`; servers use :func:`create_app`.
"""

from ._tokens import InvalidToken, TokenService, jwt_keys_from
from ._server import serve_app
from .app import create_app

__all__ = ["create_app", "serve_app", "TokenService", "InvalidToken", "jwt_keys_from"]
