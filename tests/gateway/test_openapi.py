"""GET /openapi.json: a valid OpenAPI 3.1 document generated from the mounted Route tables and
their structs."""

from decimal import Decimal
import re

import pytest
from openapi_spec_validator import validate
from quart import Blueprint

from workup.gateway.routes import SERVICE_ROUTES
from workup.gateway.routing import ANY, CALLER, Body, CacheKey, Query, Route, mount
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
