"""The gateway's routes: its own (``_ops``: welcome, health, metrics, OpenAPI; ``_docs``: the
Swagger UI page on it; ``_websocket``: the notifications WebSocket) and one table of
:class:`~workup.gateway.routing.Route` per service."""

from __future__ import annotations

from quart import Blueprint

from . import _docs, _ops, _websocket, contracts, jobs, payments, users

__all__ = ["SERVICE_ROUTES", "blueprints"]

# the route module of each service, by service name
SERVICE_ROUTES = {"users": users, "jobs": jobs, "contracts": contracts, "payments": payments}


def blueprints() -> list[Blueprint]:
    """Every blueprint of the gateway: its own routes, then each service's."""
    own = [_ops.blueprint, _docs.blueprint, _websocket.blueprint]
    return [*own, *(module.blueprint for module in SERVICE_ROUTES.values())]
