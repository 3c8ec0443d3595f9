"""Route modules of the gateway. Each service's module (owned by that service's engineer) defines
``blueprint`` with full paths; :func:`blueprints` imports those that exist."""

from __future__ import annotations

import importlib

from quart import Blueprint

__all__ = ["ROUTE_MODULES", "blueprints"]

ROUTE_MODULES = ["users", "jobs", "contracts", "payments"]


def blueprints() -> list[Blueprint]:
    """The gateway's own routes, then every service route module present (missing ones skipped;
    an import error inside a present module is raised, not hidden)."""
    from . import _notifications, _ops
    found = [_ops.blueprint, _notifications.blueprint]
    for name in ROUTE_MODULES:
        qualified = f"{__name__}.{name}"
        try:
            module = importlib.import_module(qualified)
        except ModuleNotFoundError as exc:
            if exc.name == qualified:
                continue
            raise
        found.append(module.blueprint)
    return found
