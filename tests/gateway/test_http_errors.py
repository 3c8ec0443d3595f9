"""Error handling of the gateway over real HTTP: every failure is RFC 9457 problem+json."""

import json

import msgspec
import pytest
from quart import Blueprint

from workup.cache import closed_account_key
from workup.gateway import routing
from workup.messages._base import Message

from tests._prometheus import sample

from ._serve import KEY, make_app, served

bp = Blueprint("probe", __name__)


class Body(Message):
    name: str
    count: int = 0
    nested: list["Item"] = []


class Item(Message):
    item_name: str


class Query(Message):
    page_limit: int = 20
    tags: list[str] = []


@bp.post("/probe/body")
async def probe_body():
    routing.require_auth()
    body = await routing.json_body(Body)
    return {"name": body.name, "count": body.count}


@bp.post("/probe/empty-ok")
async def probe_empty():
    body = await routing.json_body(Query, allow_empty=True)
    return {"pageLimit": body.page_limit}


@bp.get("/probe/query")
async def probe_query():
    q = routing.query_params(Query)
    return {"pageLimit": q.page_limit, "tags": q.tags}


@bp.get("/probe/role")
async def probe_role():
    caller = routing.require_role("ADMIN")
    return {"user": caller.user_id}


@bp.get("/probe/boom")
async def probe_boom():
    raise RuntimeError("secret internals")


def token(role="CLIENT", user="u1"):
    from workup.gateway import TokenService
    return TokenService([KEY]).issue(user, role)


def assert_problem(r, status):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    doc = r.json()
    assert doc["status"] == status and doc["type"] == "about:blank" and doc["title"]
    assert "Traceback" not in r.text
    return doc


@pytest.fixture
async def client():
    async with served(make_app(blueprints=[bp])) as (c, _):
        yield c


async def test_welcome_and_health(client):
    r = await client.get("/")
    assert r.status_code == 200 and r.json()["name"] == "WorkUp"
    r = await client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["x-request-id"]


async def test_unknown_route_is_404_with_or_without_token(client):
    for headers in ({}, {"Authorization": f"Bearer {token()}"}, {"Authorization": "Bearer junk"}):
        assert_problem(await client.get("/api/v1/nothing", headers=headers), 404)
        assert_problem(await client.post("/nope", headers=headers, content=b"x" * 10), 404)


async def test_wrong_method_is_405(client):
    r = await client.delete("/health")
    assert_problem(r, 405)
    assert "GET" in r.headers["allow"]


async def test_bad_token_is_401_even_on_public_routes(client):
    for value in ("Bearer junk", "Basic dXNlcjpwYXNz", "Bearer", "Bearer a.b.c", f"Bearer {token()}x"):
        r = await client.get("/", headers={"Authorization": value})
        assert_problem(r, 401)
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_anonymous_and_roles(client):
    assert_problem(await client.get("/probe/role"), 401)
    assert_problem(await client.get("/probe/role", headers={"Authorization": f"Bearer {token('CLIENT')}"}), 403)
    r = await client.get("/probe/role", headers={"Authorization": f"Bearer {token('ADMIN', 'a1')}"})
    assert r.status_code == 200 and r.json() == {"user": "a1"}


async def test_closed_account_token_refused():
    app = make_app(blueprints=[bp])
    async with served(app) as (client, _):
        auth = {"Authorization": f"Bearer {token('ADMIN', 'gone')}"}
        assert (await client.get("/probe/role", headers=auth)).status_code == 200
        await app.gw.cache.set_flag(closed_account_key("gone"))
        kit_closed = app.gw.revocations
        kit_closed._open_until.clear()  # skip the 1 s memo of the "open" answer
        assert_problem(await client.get("/probe/role", headers=auth), 401)


async def test_json_body_errors(client):
    auth = {"Authorization": f"Bearer {token()}"}
    ok = await client.post("/probe/body", headers=auth, json={"name": "a", "count": 2})
    assert ok.status_code == 200 and ok.json() == {"name": "a", "count": 2}
    # 415: declared non-JSON, or undeclared and not JSON
    assert_problem(await client.post("/probe/body", headers={**auth, "Content-Type": "text/plain"},
                                     content=b'{"name":"a"}'), 415)
    assert_problem(await client.post("/probe/body", headers=auth, content=b"name=a"), 415)
    # 400: malformed JSON, wrong type, missing field, unknown field, empty body
    assert_problem(await client.post("/probe/body", headers={**auth, "Content-Type": "application/json"},
                                     content=b'{"name":'), 400)
    doc = assert_problem(await client.post("/probe/body", headers=auth, json={"name": 1}), 400)
    assert doc["errors"][0]["field"] == "name"
    doc = assert_problem(await client.post("/probe/body", headers=auth, json={"count": 1}), 400)
    assert doc["errors"][0]["field"] == "name"
    doc = assert_problem(await client.post("/probe/body", headers=auth,
                                           json={"name": "a", "nested": [{"itemName": 3}]}), 400)
    assert doc["errors"][0]["field"] == "nested[0].itemName"
    assert_problem(await client.post("/probe/body", headers=auth, json={"name": "a", "extra": 1}), 400)
    assert_problem(await client.post("/probe/body", headers={**auth, "Content-Type": "application/json"}), 400)
    # 413: over 1 MiB, declared or streamed
    big = json.dumps({"name": "x" * (1024 * 1024)}).encode()
    assert_problem(await client.post("/probe/body", headers={**auth, "Content-Type": "application/json"},
                                     content=big), 413)

    async def chunks():
        for _ in range(20):
            yield b"x" * 65536
    assert_problem(await client.post("/probe/body", headers={**auth, "Content-Type": "application/json"},
                                     content=chunks()), 413)


async def test_allow_empty_body(client):
    r = await client.post("/probe/empty-ok")
    assert r.status_code == 200 and r.json() == {"pageLimit": 20}
    r = await client.post("/probe/empty-ok", json={})
    assert r.status_code == 200 and r.json() == {"pageLimit": 20}


async def test_query_params(client):
    r = await client.get("/probe/query?pageLimit=5&tags=a&tags=b")
    assert r.json() == {"pageLimit": 5, "tags": ["a", "b"]}
    doc = assert_problem(await client.get("/probe/query?pageLimit=abc"), 400)
    assert doc["errors"][0]["field"] == "pageLimit"
    assert_problem(await client.get("/probe/query?bogus=1"), 400)


async def test_unexpected_error_is_500_without_internals(client):
    r = await client.get("/probe/boom")
    doc = assert_problem(r, 500)
    assert "secret internals" not in r.text and "RuntimeError" not in r.text
    assert r.headers["x-request-id"] in doc["detail"]


async def test_request_id_is_echoed(client):
    r = await client.get("/", headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await client.get("/", headers={"X-Request-Id": "bad id with spaces"})
    assert r.headers["x-request-id"] != "bad id with spaces"


async def test_metrics_count_requests_by_route_template(client):
    await client.get("/probe/query?pageLimit=1")
    await client.get("/nope")
    text = (await client.get("/metrics")).text
    assert sample(text, "workup_http_requests_total", method="GET", route="/probe/query", status="200") == 1
    assert sample(text, "workup_http_requests_total", method="GET", route="<unmatched>", status="404") == 1
    assert sample(text, "workup_http_request_duration_seconds_bucket",
                  method="GET", route="/probe/query", status="200", le="+Inf") == 1


async def test_structured_access_log(client, caplog):
    import logging
    caplog.set_level(logging.INFO, logger="workup.access")
    r = await client.get("/probe/role", headers={"Authorization": f"Bearer {token('ADMIN', 'adm')}",
                                                 "X-Request-Id": "log-me-1"})
    assert r.status_code == 200
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "workup.access"]
    entry = next(e for e in lines if e["requestId"] == "log-me-1")
    assert entry["method"] == "GET" and entry["path"] == "/probe/role" and entry["route"] == "/probe/role"
    assert entry["status"] == 200 and entry["user"] == "adm" and entry["role"] == "ADMIN"
    assert entry["ms"] >= 0


async def test_metrics_labels_stay_bounded(client):
    for i in range(3):
        await client.request(f"BREW{i}", "/")
        await client.get(f"/nothing/{i}")
    text = (await client.get("/metrics")).text
    assert "BREW" not in text and "/nothing/" not in text
    assert 'method="OTHER",route="<unmatched>"' in text


class _Probe:
    """Only the health probe of a transport (the decision under test is the gateway's)."""

    def __init__(self, up):
        self.up = up

    async def healthy(self):
        return self.up


class _Conn:
    def __init__(self, is_open):
        self.is_open = is_open


class _AmqpLike:
    def __init__(self, is_open):
        self.conn = _Conn(is_open)


@pytest.mark.parametrize("transport, status", [
    (_Probe(True), 200), (_Probe(False), 503), (_AmqpLike(True), 200), (_AmqpLike(False), 503), (None, 200),
])
async def test_health_follows_the_broker(transport, status):
    async with served(make_app(transport)) as (client, _):
        r = await client.get("/health")
        assert r.status_code == status
        if status == 503:
            assert r.headers["retry-after"] and r.json()["status"] == 503
