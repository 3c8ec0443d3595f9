"""GET /openapi.json: a valid OpenAPI 3.1 document generated from the mounted Route tables and
their structs."""

from decimal import Decimal
import json
import re

import pytest
from openapi_spec_validator import validate
from quart import Blueprint, Quart

from workup.gateway.openapi import IDEMPOTENCY_KEY_PATTERN
from workup.gateway.routes import SERVICE_ROUTES
from workup.gateway.routes.payments import IDEMPOTENCY_HEADER, idempotency_key
from workup.messages.payments import MAX_IDEMPOTENCY_KEY
from workup.gateway.routing import ANY, CALLER, Body, CacheKey, ProblemError, Query, Route, mount, path_id
from workup.messages._base import Message

from ._serve import make_app, served

bp = Blueprint("openapi_things", __name__)


class Thing(Message):
    thing_name: str
    count: int = 1
    price: Decimal | None = None


class MakeThing(Thing, kw_only=True):
    thing_id: str


class Filter(Message):
    query: str
    page_limit: int = 20


class Who(Message):
    pass


def _things_key(user_id: str) -> str:
    return f"workup:things:{user_id}"


mount(bp, "things", [
    Route("POST", "/api/v1/things/<thing_id>", ("CLIENT", "ADMIN"), MakeThing, Body(Thing),
          ids={"thing_id": "thing_id"}),
    Route("GET", "/api/v1/things", None, Filter, Query()),
    Route("GET", "/api/v1/things/<any(mine, theirs):who>/all", ANY, Who, cache=CacheKey(_things_key, (CALLER,))),
])


@pytest.fixture
async def doc():
    async with served(make_app(blueprints=[bp])) as (client, _):
        r = await client.get("/openapi.json")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        again = await client.get("/openapi.json")
        assert again.content == r.content
        yield r.json()


async def test_document_is_valid_openapi_31(doc):
    assert doc["openapi"] == "3.1.0"
    validate(doc)
    assert all(path.startswith("/") for path in doc["paths"])
    for path in ("/", "/health", "/metrics", "/openapi.json", "/api/v1/notifications"):
        assert "get" in doc["paths"][path]


async def test_probed_details(doc):
    op = doc["paths"]["/api/v1/things/{thing_id}"]["post"]
    assert op["x-roles"] == ["CLIENT", "ADMIN"] and op["security"] == [{"bearerAuth": []}]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Thing"}
    assert {"400", "401", "403", "404", "409", "413", "415", "503", "504"} <= set(op["responses"])
    thing = doc["components"]["schemas"]["Thing"]
    assert thing["required"] == ["thingName"] and set(thing["properties"]) == {"thingName", "count", "price"}
    assert {"type": "number"} in thing["properties"]["price"]["anyOf"]   # money: exact JSON numbers
    assert [p["name"] for p in op["parameters"]] == ["thing_id"]

    op = doc["paths"]["/api/v1/things"]["get"]
    assert op["security"] == [] and "x-roles" not in op
    params = {p["name"]: p for p in op["parameters"]}
    assert params["query"]["required"] is True and params["pageLimit"]["required"] is False
    assert params["pageLimit"]["in"] == "query"

    # an any() converter is written out per choice
    assert "/api/v1/things/mine/all" in doc["paths"] and "/api/v1/things/theirs/all" in doc["paths"]
    assert doc["paths"]["/api/v1/things/mine/all"]["get"]["x-roles"] == ["CLIENT", "FREELANCER", "ADMIN"]


async def test_path_ids_declare_the_rule_the_gateway_checks(doc):
    """A documented id pattern that disagrees with ``path_id`` is what schemathesis calls a
    validation mismatch: each sample must be accepted by both or refused by both."""
    (param,) = doc["paths"]["/api/v1/things/{thing_id}"]["post"]["parameters"]
    # JSON Schema's `$` (ECMA 262) is the very end; Python's also matches before a final newline
    pattern = param["schema"]["pattern"].replace("$", r"\Z")
    samples = ["0" * 32, "ABCDEF0123456789abcdef0123456789", "01234567-89ab-cdef-0123-456789abcdef",
               "", "0" * 31, "0" * 33, "g" * 32, "01234567-89ab-cdef-0123-456789abcdef0", "x" + "0" * 32,
               "01234567-89abcdef-0123-456789abcdef", " " + "0" * 32, "0" * 32 + "\n"]
    for sample in samples:
        documented = re.search(pattern, sample) is not None
        try:
            path_id(sample)
            accepted = True
        except ProblemError as exc:
            assert exc.status == 400
            accepted = False
        assert documented == accepted, (sample, pattern)
    assert sum(re.search(pattern, s) is not None for s in samples) == 3


async def test_the_idempotency_key_declares_the_rule_the_gateway_checks():
    """Every key the documented schema allows is taken by the gateway's own check, and every one
    it refuses is refused (schemathesis's "validation mismatch" on pay, found with the path ids)."""
    pattern = IDEMPOTENCY_KEY_PATTERN.replace("$", r"\Z")   # ECMA's `$`, as above
    app = Quart(__name__)
    samples = ["k", "order-42", "a b", "caf\u00e9 \u00ff", "x" * MAX_IDEMPOTENCY_KEY, "!~", " k", "k ", " ",
               "x" * (MAX_IDEMPOTENCY_KEY + 1), "a\tb", "a\x7fb", "a\u00a0b", "a\u00adb", "a\x85b", "\u00a0"]
    outcomes = []
    for sample in samples:
        documented = re.search(pattern, sample) is not None and len(sample) <= MAX_IDEMPOTENCY_KEY
        async with app.test_request_context("/", headers={IDEMPOTENCY_HEADER: sample}):
            try:
                accepted = idempotency_key() == sample
            except ProblemError as exc:
                assert exc.status == 400
                accepted = False
        outcomes.append(accepted)
        if sample.strip() == sample:   # the gateway trims what HTTP would have trimmed already
            assert documented == accepted, (sample, pattern)
    assert outcomes.count(True) >= 6


async def test_every_declared_route_of_every_service_is_documented(doc):
    checked = 0
    for module in SERVICE_ROUTES.values():
        for route in module.ROUTES:
            path = route.path
            path = re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", path)
            assert route.method.lower() in doc["paths"].get(path, {}), (route.method, path)
            checked += 1
    assert checked > 0


async def test_me_is_written_out_per_role(doc):
    if "/api/v1/payments/clients/me/wallet" not in doc["paths"]:
        pytest.fail("payments routes are not registered")
    assert doc["paths"]["/api/v1/payments/clients/me/wallet"]["get"]["x-roles"] == ["CLIENT"]
    assert doc["paths"]["/api/v1/payments/freelancers/me/wallet"]["get"]["x-roles"] == ["FREELANCER"]
    assert not any("{me}" in p for p in doc["paths"])


def _template(rule):
    return re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule)


def _operations(doc):
    return {(method, path): op for path, item in doc["paths"].items() for method, op in item.items()
            if method != "parameters"}


async def test_every_route_has_a_summary_and_description_in_the_api_words(doc):
    routes = [(route.method.lower(), _template(route.path))
              for module in SERVICE_ROUTES.values() for route in module.ROUTES]
    ops = _operations(doc)
    summaries = set()
    for key in routes:
        op = ops[key]
        assert op["summary"] and op["summary"] != op["x-command"], key
        assert len(op["summary"]) < 60 and "\n" not in op["summary"], key
        assert op["description"].split("\n\n")[0] not in ("", op["summary"]), key
        summaries.add(op["summary"])
    assert len(summaries) > 0.9 * len(routes)   # human words, not one phrase for all
    for key in (("get", "/"), ("get", "/health"), ("get", "/openapi.json"), ("get", "/api/v1/notifications")):
        assert ops[key]["summary"] and ops[key]["description"], key


async def test_idempotency_key_is_declared_where_the_gateway_honours_it(doc):
    honoured = {(route.method.lower(), _template(route.path))
                for module in SERVICE_ROUTES.values() for route in module.ROUTES
                if route.hook is SERVICE_ROUTES["payments"].idempotent}
    declared = {key for key, op in _operations(doc).items()
                if any(p.get("name") == "Idempotency-Key" and p["in"] == "header" for p in op["parameters"])}
    assert declared == honoured
    assert {p for _, p in declared} == {
        "/api/v1/payments/clients/me/wallet/deposit", "/api/v1/payments/clients/me/wallet/withdraw",
        "/api/v1/payments/freelancers/me/wallet/deposit", "/api/v1/payments/freelancers/me/wallet/withdraw",
        "/api/v1/payments/requests/{id}/pay"}


async def test_request_id_and_retry_after_headers_are_declared(doc):
    components = doc["components"]
    parameter = components["parameters"]["X-Request-Id"]
    assert parameter["in"] == "header" and parameter["required"] is False
    for path, item in doc["paths"].items():
        assert {"$ref": "#/components/parameters/X-Request-Id"} in item["parameters"], path
    for (method, path), op in _operations(doc).items():
        for status, response in op["responses"].items():
            if status == "101":
                continue   # a WebSocket handshake: no HTTP answer of the gateway's own
            if "$ref" in response:
                response = components["responses"][response["$ref"].rsplit("/", 1)[-1]]
            headers = response.get("headers", {})
            assert "X-Request-Id" in headers, (method, path, status)
            assert ("Retry-After" in headers) == (status in ("429", "503")), (method, path, status)
    assert components["headers"]["Retry-After"]["schema"]["type"] == "integer"


async def test_no_python_docstring_leaks_into_the_document(doc):
    import inspect

    import msgspec

    from workup.gateway import routing
    from workup.messages import contracts, jobs, payments, users

    text = json.dumps(doc)
    assert "``" not in text and ":class:" not in text and ":func:" not in text
    assert not [n for n, schema in doc["components"]["schemas"].items() if "description" in schema]
    structs = [t for module in (users, jobs, contracts, payments) for t in vars(module).values()
               if isinstance(t, type) and issubclass(t, msgspec.Struct)]
    structs += [routing.NoBody]
    docstrings = {inspect.cleandoc(t.__doc__) for t in structs if t.__doc__}
    assert len(docstrings) > 10
    leaked = [d for d in docstrings if json.dumps(d)[1:-1] in text]
    assert not leaked, leaked


async def test_served_request_id_matches_the_declared_pattern(doc):
    pattern = doc["components"]["headers"]["X-Request-Id"]["schema"]["pattern"]
    async with served(make_app()) as (client, _):
        echoed = await client.get("/health", headers={"X-Request-Id": "mine-1.2_3"})
        made = await client.get("/health", headers={"X-Request-Id": "not ok!"})
    assert echoed.headers["x-request-id"] == "mine-1.2_3"
    assert made.headers["x-request-id"] != "not ok!" and re.match(pattern, made.headers["x-request-id"])
