"""The OpenAPI 3.1 document, generated from the registered routes and the structs that validate.

Each HTTP rule of the app is *probed*: its handler runs once in a request context where the kit
records, instead of doing, what the handler asks for (role rule, body struct, query struct,
command) and stops it there (see ``kit._probe``). Schemas come from those structs through
``msgspec.json.schema_components``; success statuses and reply types come from the route
module's ``ROUTES`` table when it has one (items with ``method``, ``path``, ``status``,
``reply``). Paths are absolute; routes written per role (payments' ``clients/me`` and
``freelancers/me``) appear once per role.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Iterable

import msgspec
from quart import Quart

from .. import __version__
from ..problems import Problem, ProblemError
from . import kit

__all__ = ["openapi_document", "Probe", "openapi_path"]

_RULE_ARG = re.compile(r"<(?:(?P<conv>[^:<>()]+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")
_SKIP_BLUEPRINTS = {"ops"}
_PROBE_VALUE = "0" * 32   # a well-formed id for every id format in use (32 hex, UUID)
_PROBLEM_JSON = "application/problem+json"


@dataclass
class Probe:
    roles: tuple[str, ...] | None = None    # None: the handler never asked (public)
    body: Any = None
    body_optional: bool = False
    query: Any = None
    command: str | None = None
    cached: bool = False
    failed: str | None = None


def openapi_path(rule: str) -> str:
    """``/api/v1/jobs/<job_id>`` → ``/api/v1/jobs/{job_id}``."""
    return _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule)


def _expansions(rule: str) -> list[tuple[str, dict[str, str]]]:
    """Concrete (template, probe values) pairs; ``any(a, b)`` converters give one per choice."""
    results: list[tuple[str, dict[str, str]]] = [(rule, {})]
    for m in _RULE_ARG.finditer(rule):
        if m.group("conv") != "any":
            continue
        choices = [c.strip().strip("'\"") for c in (m.group("args") or "").split(",") if c.strip()]
        name = m.group("name")
        results = [(r.replace(m.group(0), c, 1), {**v, name: c}) for r, v in results for c in choices]
    out = []
    for r, values in results:
        for m in _RULE_ARG.finditer(r):
            values[m.group("name")] = _PROBE_VALUE
        out.append((r, values))
    return out


async def _probe(app: Quart, rule: Any, method: str, path: str, values: dict[str, str]) -> Probe:
    probe = Probe()
    view: Any = app.view_functions[rule.endpoint]
    concrete = _RULE_ARG.sub(lambda m: values.get(m.group("name"), _PROBE_VALUE), path)
    async with app.test_request_context(concrete, method=method):
        token = kit._probe.set(probe)
        try:
            await view(**values)
        except kit.ProbeDone:
            pass
        except ProblemError as exc:
            probe.failed = exc.problem.detail
        except Exception as exc:  # a handler we cannot probe is documented without details
            probe.failed = f"{type(exc).__name__}: {exc}"
        finally:
            kit._probe.reset(token)
    return probe


def _route_meta(view: Any, method: str, path: str) -> Any:
    # the view's own module first; then every route module, since one module may register the
    # ROUTES of another (the contracts routes are registered by the jobs module's helper)
    own = sys.modules.get(getattr(view, "__module__", "") or "")
    modules = [own] + [m for name, m in sys.modules.items()
                       if name.startswith("workup.gateway.routes.") and m is not own]
    for module in modules:
        for route in getattr(module, "ROUTES", None) or ():
            if getattr(route, "method", None) == method and getattr(route, "path", None) == path:
                return route
    return None


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
    503: "The owning service is frozen or no instance answered; Retry-After is set",
    504: "The owning service did not reply before the request deadline",
}


def _operation(rule: Any, method: str, template: str, probe: Probe, meta: Any,
               schemas: _Schemas, pending: list[tuple[dict, str, int]]) -> dict[str, Any]:
    segments = [s for s in template.split("/") if s and not s.startswith("{")]
    tag = segments[2] if len(segments) > 2 and segments[:2] == ["api", "v1"] else "operations"
    op: dict[str, Any] = {
        "operationId": re.sub(r"[^A-Za-z0-9_]", "_", f"{method.lower()}{template}").strip("_"),
        "tags": [tag],
        "responses": {},
    }
    if probe.command:
        op["summary"] = f"{probe.command}" + (" (cached read)" if probe.cached else "")
    errors = {503, 504}               # every probed route forwards to its service
    if method != "GET":
        errors.add(409)
    params = []
    for m in _RULE_ARG.finditer(rule.rule):
        if m.group("conv") == "any":
            continue
        params.append({"name": m.group("name"), "in": "path", "required": True, "schema": {"type": "string"}})
        errors |= {400, 404}
    if probe.roles is None:
        op["security"] = []
        op["description"] = "Public route (a token, if sent, must be valid)."
    else:
        op["security"] = [{"bearerAuth": []}]
        op["description"] = ("Roles: " + ", ".join(probe.roles)) if probe.roles else "Any authenticated role."
        op["x-roles"] = list(probe.roles) or ["CLIENT", "FREELANCER", "ADMIN"]
        if probe.roles:
            errors.add(403)
    errors.add(401)
    if probe.query is not None:
        pending.append((op, "query", schemas.add(probe.query)))
        errors.add(400)
    if probe.body is not None:
        pending.append((op, "body", schemas.add(probe.body)))
        op["requestBody"] = {"required": not probe.body_optional, "content": {}}
        errors |= {400, 413, 415}
    errors |= set(getattr(meta, "errors", ()) or ())  # route-specific errors a ROUTES table declares
    status = getattr(meta, "status", None) or (201 if method == "POST" and "register" in template else 200)
    reply = getattr(meta, "reply", None)
    success: dict[str, Any] = {"description": "Success"}
    if status != 204:
        if getattr(meta, "text", False):
            success["content"] = {"text/plain": {"schema": {"type": "string"}}}
        elif reply is not None:
            pending.append((success, "reply", schemas.add(reply)))
        else:
            success["content"] = {"application/json": {"schema": {}}}
    op["responses"][str(status)] = success
    op["responses"].update(_error_responses(errors))
    if probe.failed:
        op["x-probe"] = probe.failed
    op["parameters"] = params
    return op


def _fill(pending: list[tuple[dict, str, int]], schemas: list[Any], components: dict[str, Any]) -> None:
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


async def openapi_document(app: Quart) -> dict[str, Any]:
    schemas = _Schemas()
    pending: list[tuple[dict, str, int]] = []
    paths: dict[str, dict[str, Any]] = {}
    for rule in app.url_map.iter_rules():
        if rule.websocket or rule.endpoint.split(".")[0] in _SKIP_BLUEPRINTS | {"notifications"}:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            view = app.view_functions[rule.endpoint]
            meta = _route_meta(view, method, rule.rule)
            for concrete, values in _expansions(rule.rule):
                template = openapi_path(concrete)
                probe = await _probe(app, rule, method, concrete, values)
                op = _operation(rule, method, template, probe, meta, schemas, pending)
                paths.setdefault(template, {})[method.lower()] = op
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
