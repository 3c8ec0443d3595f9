"""The OpenAPI 3.1 document, generated from the mounted :class:`~workup.gateway.routing.Route`
tables and the structs that validate.

Each mounted Route is one operation: its summary and description, role rule, body or query
struct, command, cache key, success status, reply type and route-specific errors are what the
table declares. Schemas come from those structs through ``msgspec.json.schema_components`` (money
as JSON numbers, struct docstrings left out). Every path takes ``X-Request-Id`` and every answer
carries it; 429 and 503 declare ``Retry-After``; the routes whose hook reads ``Idempotency-Key``
declare it. Paths are absolute; an ``any(a, b)`` converter is written out per choice.

The route lists of ``docs/api.md`` are made from the same document (:func:`with_route_lists`):
``python -m workup.gateway.openapi docs/api.md`` rewrites them; without an argument the module
prints the document.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

import msgspec
from quart import Quart

from .. import __version__
from ..messages.payments import MAX_IDEMPOTENCY_KEY
from ..problems import Problem
from ._answer import REQUEST_ID_PATTERN
from .routes.payments import IDEMPOTENCY_HEADER, idempotent
from .routing import PATH_ID_PATTERN, Body, Hook, Mounted, PlainText, Query, mounted_routes

__all__ = ["openapi_document", "openapi_path", "route_lists", "with_route_lists", "IDEMPOTENCY_KEY_PATTERN"]

_RULE_ARG = re.compile(r"<(?:(?P<conv>[^:<>()]+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")
_PROBLEM_JSON = "application/problem+json"
_REQUEST_ID_HEADER = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
_RETRY_AFTER_HEADER = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}

# What routes/payments.py's idempotency_key accepts (printable, not blank) among the characters a
# header carries (Latin-1): no C0/C1 control, no DEL, no no-break or soft hyphen, and not starting
# or ending with a space; so schemathesis's generated keys are the ones the gateway takes.
_KEY_CHAR = "!-~\u00a1-\u00ac\u00ae-\u00ff"
IDEMPOTENCY_KEY_PATTERN = f"^[{_KEY_CHAR}](?:[ {_KEY_CHAR}]*[{_KEY_CHAR}])?$"

# the request headers a route's hook reads (a hook is code, so the table says it here)
_HOOK_HEADERS: dict[Hook, list[dict[str, Any]]] = {
    idempotent: [{
        "name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY,
                   "pattern": IDEMPOTENCY_KEY_PATTERN},
        "description": ("Any printable text you choose for this operation. The first answer for a key, "
                        "whatever its status, is stored and returned to every retry with that key by the "
                        "same user on the same route for at least 24 hours; the money moves once."),
    }],
}


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
        # msgspec makes a struct's docstring its schema's description: those are notes to this
        # code's readers, not the API's words (field descriptions come from msgspec.Meta and stay)
        components = {name: {k: v for k, v in schema.items() if k != "description"}
                      for name, schema in components.items()}
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
        "summary": route.summary or mounted.command,
        "x-command": mounted.command,
    }
    about = [route.description] if route.description else []
    errors = {503, 504}               # every route forwards to its service
    if method != "GET":
        errors.add(409)
    params: list[dict[str, Any]] = []
    for m in _RULE_ARG.finditer(route.path):
        if m.group("conv") == "any":
            continue
        if m.group("name") in route.ids:   # the exact rule path_id checks, so no valid id is refused
            params.append({"name": m.group("name"), "in": "path", "required": True,
                           "schema": {"type": "string", "pattern": PATH_ID_PATTERN},
                           "description": "A UUID: 32 hexadecimal digits, hyphenated 8-4-4-4-12 or not"})
            errors |= {400, 404}
        else:
            params.append({"name": m.group("name"), "in": "path", "required": True, "schema": {"type": "string"}})
            errors.add(404)
    if route.roles is None:
        op["security"] = []
        about.append("Public route (a token, if sent, must be valid).")
    else:
        op["security"] = [{"bearerAuth": []}]
        about.append(("Roles: " + ", ".join(route.roles) + ".") if route.roles else "Any authenticated role.")
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
    if route.cache is not None:
        about.append("Served from the read cache when it holds the answer.")
    if route.hook in _HOOK_HEADERS:
        params += _HOOK_HEADERS[route.hook]
    success["headers"] = _REQUEST_ID_HEADER
    op["responses"][str(route.status)] = success
    op["responses"].update(_error_responses(errors))
    op["parameters"] = params
    op["description"] = "\n\n".join(about)
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


# the gateway's own routes: (summary, description, content type)
_STATIC = {
    ("GET", "/"): ("Welcome", "The API's name and version, and where its parts are: the API's base path, "
                   "this document, its page for browsers (`/docs`), health and metrics.", "application/json"),
    ("GET", "/health"): ("Health", "200 when the gateway can reach the message broker, else 503 with "
                         "`Retry-After`.", "application/json"),
    ("GET", "/metrics"): ("Prometheus metrics", "The gateway's metrics in the Prometheus text format.",
                          "text/plain"),
    ("GET", "/openapi.json"): ("This document", "OpenAPI 3.1 of every route, made from the gateway's route "
                               "tables; `/docs` shows it in a browser.", "application/json"),
}


def _static_paths(paths: dict[str, Any]) -> None:
    for (method, path), (summary, description, ctype) in _STATIC.items():
        responses: dict[str, Any] = {"200": {"description": summary, "content": {ctype: {"schema": {}}},
                                             "headers": _REQUEST_ID_HEADER}}
        if path == "/health":
            responses["503"] = {"$ref": "#/components/responses/E503"}
        paths.setdefault(path, {})[method.lower()] = {
            "operationId": "get_" + (path.strip("/").replace(".", "_") or "root"), "tags": ["operations"],
            "summary": summary, "description": description,
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


_ABOUT = """The REST API of WorkUp, a freelance marketplace: clients post jobs, freelancers propose,
an accepted proposal becomes a contract whose milestones are paid from wallets.

JSON bodies with camelCase fields; money as JSON numbers (more than 0, at most 2 decimal places);
dates `YYYY-MM-DD`, timestamps RFC 3339 UTC. Sign up or log in for a bearer token and send it as
`Authorization: Bearer <token>`. Errors are RFC 9457 problem documents (`application/problem+json`),
with `errors` naming each bad field. 429 and 503 answers say in `Retry-After` when to try again;
every answer carries `X-Request-Id`."""


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
    for item in paths.values():   # every request may name itself; OpenAPI says it once per path
        item["parameters"] = [{"$ref": "#/components/parameters/X-Request-Id"}]
    problem_ref = rendered[0]
    return {
        "openapi": "3.1.0",
        "info": {"title": "WorkUp API", "version": __version__, "description": _ABOUT},
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "tokenQuery": {"type": "apiKey", "in": "query", "name": "token"},
            },
            "responses": {
                f"E{code}": {"description": text, "content": {_PROBLEM_JSON: {"schema": problem_ref}},
                             "headers": {**_REQUEST_ID_HEADER, **(_RETRY_AFTER_HEADER if code in (429, 503) else {})}}
                for code, text in _ERROR_TEXT.items()
            },
            "parameters": {"X-Request-Id": {
                "name": "X-Request-Id", "in": "header", "required": False,
                "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN},
                "description": ("Your id for this request: the answer carries it back and every log line "
                                "about the request names it. Absent or not of this form, the gateway "
                                "makes one."),
            }},
            "headers": {
                "X-Request-Id": {"description": "The request's id: the one sent, or the one the gateway made",
                                 "schema": {"type": "string", "pattern": REQUEST_ID_PATTERN}},
                "Retry-After": {"description": "Seconds to wait before trying again",
                                "schema": {"type": "integer", "minimum": 0}},
            },
        },
    }


# --- docs/api.md: its route lists are made from the same document --------------------------------

_BEGIN, _END = "<!-- routes: {tag} -->", "<!-- end of routes -->"   # markers in docs/api.md


def _success(op: dict[str, Any]) -> str:
    status, response = next((s, r) for s, r in op["responses"].items() if s < "400")
    content = response.get("content", {})
    if "text/plain" in content:
        return f"{status} text"
    schema = content.get("application/json", {}).get("schema", {})
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
    name = f"`{ref.rsplit('/', 1)[-1]}`" if ref else schema.get("type", "")
    name = f"array of {name}" if schema.get("type") == "array" and ref else name
    return f"{status} {name}".rstrip()


_WHO = ("Roles:", "Any authenticated role.", "Public route")   # the role line: the list has a column for it


def route_lists(doc: dict[str, Any]) -> dict[str, str]:
    """Markdown of each tag's operations, in path order: method, path, who, success, summary and
    description."""
    lists: dict[str, list[str]] = {}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters" or method == "get" and path == "/api/v1/notifications":
                continue
            roles = op.get("x-roles", [])
            who = "any role" if len(roles) == 3 else ", ".join(roles) or "public"
            about = " ".join(p for p in op.get("description", "").split("\n\n") if p and not p.startswith(_WHO))
            lists.setdefault(op["tags"][0], []).append(
                f"- `{method.upper()} {path}` · {who} · {_success(op)} — **{op['summary']}.** {about}".rstrip())
    return {tag: "\n".join(lines) for tag, lines in lists.items()}


def with_route_lists(text: str, doc: dict[str, Any]) -> str:
    """``text`` (docs/api.md) with each marked route list replaced by the current one."""
    for tag, listed in route_lists(doc).items():
        begin = _BEGIN.format(tag=tag)
        if begin in text:
            head, _, rest = text.partition(begin)
            _, _, tail = rest.partition(_END)
            text = f"{head}{begin}\n{listed}\n{_END}{tail}"
    return text


def _document() -> dict[str, Any]:
    """The document of every route the gateway mounts, without serving anything."""
    from .routes import blueprints

    app = Quart("workup.openapi")
    for blueprint in blueprints():
        app.register_blueprint(blueprint)
    return openapi_document(app)


if __name__ == "__main__":   # python -m workup.gateway.openapi [docs/api.md]: rewrite its route lists
    import sys

    if len(sys.argv) > 1:
        target = Path(sys.argv[1])
        target.write_text(with_route_lists(target.read_text(), _document()))
    else:
        print(json.dumps(_document(), indent=1))
