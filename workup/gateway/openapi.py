"""The OpenAPI 3.1 document, generated from the mounted :class:`~workup.gateway.routing.Route`
tables and the structs that validate.

Each mounted Route is one operation: its role rule, body or query struct, command, cache key,
success status, reply type and route-specific errors are what the table declares. Schemas come
from those structs through ``msgspec.json.schema_components`` (money as JSON numbers). Paths are
absolute; an ``any(a, b)`` converter is written out per choice.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import msgspec
from quart import Quart

from .. import __version__
from ..problems import Problem
from .routing import Body, Mounted, PlainText, Query, mounted_routes

__all__ = ["openapi_document", "openapi_path"]

_RULE_ARG = re.compile(r"<(?:(?P<conv>[^:<>()]+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")
_PROBLEM_JSON = "application/problem+json"


def openapi_path(rule: str) -> str:
    """``/api/v1/jobs/<job_id>`` → ``/api/v1/jobs/{job_id}``."""
    return _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule)


def _expansions(rule: str) -> list[str]:
    """The concrete rules of ``rule``: ``any(a, b)`` converters give one per choice."""
    results = [rule]
    for m in _RULE_ARG.finditer(rule):
        if m.group("conv") != "any":
            continue
        choices = [c.strip().strip("'\"") for c in (m.group("args") or "").split(",") if c.strip()]
        results = [r.replace(m.group(0), c, 1) for r in results for c in choices]
    return results


def _numbers_for_decimals(node: Any) -> Any:
    """Money is written as JSON numbers (exact decimals), not strings."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "decimal":
            rest = {k: v for k, v in node.items() if k not in ("type", "format")}
            return {**rest, "type": "number"}
        return {k: _numbers_for_decimals(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_numbers_for_decimals(v) for v in node]
    return node


class _Schemas:
    """Collects types; renders refs once every type is known."""

    def __init__(self) -> None:
        self.types: list[Any] = [Problem]

    def add(self, t: Any) -> int:
        if t not in self.types:
            self.types.append(t)
        return self.types.index(t)

    def render(self) -> tuple[list[Any], dict[str, Any]]:
        schemas, components = msgspec.json.schema_components(self.types, ref_template="#/components/schemas/{name}")
        return _numbers_for_decimals(list(schemas)), _numbers_for_decimals(components)


def _error_responses(codes: Iterable[int]) -> dict[str, Any]:
    return {str(c): {"$ref": f"#/components/responses/E{c}"} for c in sorted(set(codes))}


_ERROR_TEXT = {
    400: "Malformed JSON, wrong types, missing or unknown fields, bad ids or query parameters",
    401: "Missing, malformed, expired or badly signed token (or a closed account)",
    403: "Valid token, wrong role, or not a party to / owner of the resource",
    404: "No such resource",
    409: "State conflict",
    413: "Body over 1 MiB",
    415: "A body that is not JSON",
    426: "Upgrade required (WebSocket route)",
    429: "Too many attempts from this address or for this account; Retry-After says when to try again",
    503: "The owning service is frozen or no instance answered; Retry-After is set",
    504: "The owning service did not reply before the request deadline",
}


def _operation(mounted: Mounted, template: str, schemas: _Schemas,
               pending: list[tuple[dict[str, Any], str, int]]) -> dict[str, Any]:
    route = mounted.route
    method = route.method
    segments = [s for s in template.split("/") if s and not s.startswith("{")]
    tag = segments[2] if len(segments) > 2 and segments[:2] == ["api", "v1"] else "operations"
    op: dict[str, Any] = {
        "operationId": re.sub(r"[^A-Za-z0-9_]", "_", f"{method.lower()}{template}").strip("_"),
        "tags": [tag],
        "responses": {},
        "summary": mounted.command + (" (cached read)" if route.cache is not None else ""),
    }
    errors = {503, 504}               # every route forwards to its service
    if method != "GET":
        errors.add(409)
    params: list[dict[str, Any]] = []
    for m in _RULE_ARG.finditer(route.path):
        if m.group("conv") == "any":
            continue
        params.append({"name": m.group("name"), "in": "path", "required": True, "schema": {"type": "string"}})
        errors |= {400, 404}
    if route.roles is None:
        op["security"] = []
        op["description"] = "Public route (a token, if sent, must be valid)."
    else:
        op["security"] = [{"bearerAuth": []}]
        op["description"] = ("Roles: " + ", ".join(route.roles)) if route.roles else "Any authenticated role."
        op["x-roles"] = list(route.roles) or ["CLIENT", "FREELANCER", "ADMIN"]
        if route.roles:
            errors.add(403)
    errors.add(401)
    given = route.input
    if isinstance(given, Query):
        pending.append((op, "query", schemas.add(given.struct or route.command)))
        errors.add(400)
    elif isinstance(given, Body):
        pending.append((op, "body", schemas.add(given.struct or route.command)))
        op["requestBody"] = {"required": not given.allow_empty, "content": {}}
        errors |= {400, 413, 415}
    errors |= set(route.errors)
    success: dict[str, Any] = {"description": "Success"}
    if route.status != 204:
        if route.reply is PlainText:
            success["content"] = {"text/plain": {"schema": {"type": "string"}}}
        elif route.reply is not None:
            pending.append((success, "reply", schemas.add(route.reply)))
        else:
            success["content"] = {"application/json": {"schema": {}}}
    op["responses"][str(route.status)] = success
    op["responses"].update(_error_responses(errors))
    op["parameters"] = params
    return op


def _fill(pending: list[tuple[dict[str, Any], str, int]], schemas: list[Any], components: dict[str, Any]) -> None:
    for target, kind, index in pending:
        schema = schemas[index]
        if kind == "body":
            target["requestBody"]["content"]["application/json"] = {"schema": schema}
        elif kind == "reply":
            target["content"] = {"application/json": {"schema": schema}}
        else:  # query struct: one parameter per field
            name = schema.get("$ref", "").rsplit("/", 1)[-1]
            struct = components.get(name, {})
            required = set(struct.get("required", ()))
            for field, field_schema in struct.get("properties", {}).items():
                target["parameters"].append({"name": field, "in": "query", "required": field in required,
                                             "schema": field_schema})


_STATIC = {
    ("GET", "/"): ("Welcome", "application/json"),
    ("GET", "/health"): ("200 when the gateway can reach the broker, else 503", "application/json"),
    ("GET", "/metrics"): ("Prometheus text format", "text/plain"),
    ("GET", "/openapi.json"): ("This document", "application/json"),
    ("GET", "/docs"): ("This document in a browser (Swagger UI)", "text/html"),
}


def _static_paths(paths: dict[str, Any]) -> None:
    for (method, path), (text, ctype) in _STATIC.items():
        responses: dict[str, Any] = {"200": {"description": text, "content": {ctype: {"schema": {}}}}}
        if path == "/health":
            responses["503"] = {"$ref": "#/components/responses/E503"}
        paths.setdefault(path, {})[method.lower()] = {
            "operationId": "get_" + (path.strip("/").replace(".", "_") or "root"), "tags": ["operations"],
            "security": [], "responses": responses, "parameters": [],
        }
    paths.setdefault("/api/v1/notifications", {})["get"] = {
        "operationId": "notifications", "tags": ["notifications"],
        "summary": "WebSocket of the caller's events",
        "description": ("Upgrade to a WebSocket (token in the Authorization header or the `token` query "
                        "parameter). Each message is JSON {type, at, data}. A bad or missing token is 401 "
                        "before the upgrade; a plain GET is 426."),
        "security": [{"bearerAuth": []}, {"tokenQuery": []}],
        "parameters": [{"name": "token", "in": "query", "required": False, "schema": {"type": "string"}}],
        "responses": {"101": {"description": "Switching Protocols"}, **_error_responses([401, 426, 503])},
    }


def openapi_document(app: Quart) -> dict[str, Any]:
    """The document of every Route mounted on ``app``, plus the gateway's own routes."""
    schemas = _Schemas()
    pending: list[tuple[dict[str, Any], str, int]] = []
    paths: dict[str, dict[str, Any]] = {}
    for mounted in mounted_routes(app):
        for concrete in _expansions(mounted.route.path):
            template = openapi_path(concrete)
            paths.setdefault(template, {})[mounted.route.method.lower()] = _operation(mounted, template, schemas, pending)
    rendered, components = schemas.render()
    _fill(pending, rendered, components)
    _static_paths(paths)
    problem_ref = rendered[0]
    return {
        "openapi": "3.1.0",
        "info": {"title": "WorkUp API", "version": __version__,
                 "description": "Freelance-marketplace backend. Errors are RFC 9457 problem documents."},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "tokenQuery": {"type": "apiKey", "in": "query", "name": "token"},
            },
            "responses": {
                f"E{code}": {"description": text, "content": {_PROBLEM_JSON: {"schema": problem_ref}}}
                for code, text in _ERROR_TEXT.items()
            },
        },
    }
