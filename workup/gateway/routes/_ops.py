"""Gateway-level routes: welcome, health, metrics."""

from __future__ import annotations

import inspect

import msgspec
from quart import Blueprint, Response, current_app

from ... import __version__ as VERSION
from ...metrics import CONTENT_TYPE
from .._problems import JSON, PROBLEM_JSON, RETRY_AFTER
from .._state import gateway

__all__ = ["blueprint"]

blueprint = Blueprint("ops", __name__)

_WELCOME = msgspec.json.encode({
    "name": "WorkUp", "version": VERSION,
    "api": "/api/v1", "openapi": "/openapi.json", "docs": "/docs", "health": "/health", "metrics": "/metrics",
})


@blueprint.get("/")
async def welcome() -> Response:
    return Response(_WELCOME, content_type=JSON)


async def broker_reachable(transport: object) -> bool:
    """The transport's own health probe when it has one (``healthy`` attribute, method or
    coroutine), else its AMQP connection's ``is_open``; an in-process transport is reachable."""
    probe = getattr(transport, "healthy", None)
    if probe is None:
        conn = getattr(transport, "conn", None)
        return bool(getattr(conn, "is_open", True)) if conn is not None else True
    if callable(probe):
        probe = probe()
    if inspect.isawaitable(probe):
        probe = await probe
    return bool(probe)


@blueprint.get("/health")
async def health() -> Response:
    if await broker_reachable(gateway().transport):
        return Response(b'{"status":"ok"}', content_type=JSON)
    body = msgspec.json.encode({"type": "about:blank", "title": "Service Unavailable", "status": 503,
                                "detail": "the message broker is unreachable"})
    return Response(body, status=503, content_type=PROBLEM_JSON, headers={"Retry-After": RETRY_AFTER})


@blueprint.get("/openapi.json")
async def openapi() -> Response:
    gw = gateway()
    if gw.openapi is None:  # generated once, on first use (every route module is registered)
        from ..openapi import openapi_document
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        gw.openapi = msgspec.json.encode(openapi_document(app))
    return Response(gw.openapi, content_type=JSON)


@blueprint.get("/metrics")
async def metrics() -> Response:
    return Response(gateway().metrics.render(), content_type=CONTENT_TYPE)
