"""Gateway → service calls over the real in-process transport and the real runtime: deadlines
(504), frozen or absent services (503 + Retry-After), the request id in the envelope, caller
identity, pass-through bodies, cached reads, RPC metrics."""

import secrets
from contextlib import asynccontextmanager

import pytest
import trio
from quart import Blueprint

from workup.cache import cache_key
from workup.gateway import routing
from workup.messages._base import Message
from workup.settings import Settings
from workup.transport import LocalTransport
from workup.runtime import Service, serve_service
from workup.runtime.control import control_key, sign


from tests._prometheus import sample

from ._serve import make_app, served

SECRET = "rpc-test-control-secret-" + "x" * 16


class Nap(Message):
    seconds: float


class Echo(Message):
    text: str


class Seen(Message):
    request_id: str
    caller: str | None
    role: str | None
    deadline_in: float
    text: str


demo = Service("demo")
calls = {"echo": 0}


@demo.command(Nap)
async def nap(ctx, req: Nap) -> dict:
    await trio.sleep(req.seconds)
    return {"slept": req.seconds}


@demo.command(Echo, status=201)
async def echo(ctx, req: Echo) -> Seen:
    import time
    calls["echo"] += 1
    return Seen(request_id=ctx.request_id, caller=ctx.caller.user_id, role=ctx.caller.role,
                deadline_in=ctx.deadline - time.time(), text=req.text)


bp = Blueprint("rpc_probe", __name__)


@bp.post("/demo/nap")
async def nap_route():
    return await routing.forward("demo.Nap", await routing.json_body(Nap))


@bp.post("/demo/echo")
async def echo_route():
    routing.require_auth()
    return await routing.forward("demo.Echo", await routing.json_body(Echo))


@bp.get("/demo/cached/<name>")
async def cached_route(name: str):
    caller = routing.require_auth()
    return await routing.cached_forward(cache_key("demo", "echo", caller.user_id), "demo.Echo", Echo(text=name))


@bp.get("/demo/missing")
async def missing_route():
    return await routing.forward("nobody.Nothing", Echo(text="x"))


@asynccontextmanager
async def open_transport(mode, amqp_url):
    if mode == "local":
        yield LocalTransport()
        return
    from workup.transport import AmqpTransport
    prefix = f"gwrpc{secrets.token_hex(5)}"
    async with AmqpTransport.connect(amqp_url, prefix=prefix) as transport:
        try:
            yield transport
        finally:
            with trio.CancelScope(shield=True):
                await transport.delete_topology(["demo"])


@pytest.fixture(params=["local", "amqp"])
async def system(request):
    amqp_url = request.getfixturevalue("amqp_url") if request.param == "amqp" else None
    async with open_transport(request.param, amqp_url) as transport:
        app = make_app(transport, blueprints=[bp], request_timeout=0.5)
        async with trio.open_nursery() as nursery:
            instance = await nursery.start(lambda task_status: serve_service(
                demo, Settings(), transport, concurrency=8, grace=0.5, control_secret=SECRET,
                task_status=task_status))
            async with served(app) as (client, _):
                yield app, transport, client, instance
            nursery.cancel_scope.cancel()


def auth(app, user="u1", role="CLIENT"):
    return {"Authorization": f"Bearer {app.gw.tokens.issue(user, role)}"}


async def test_reply_passes_through_with_caller_and_request_id(system):
    app, _, client, _ = system
    r = await client.post("/demo/echo", json={"text": "hé"}, headers={**auth(app, "u7", "FREELANCER"),
                                                                     "X-Request-Id": "req-42"})
    assert r.status_code == 201 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["requestId"] == "req-42" and r.headers["x-request-id"] == "req-42"
    assert (body["caller"], body["role"], body["text"]) == ("u7", "FREELANCER", "hé")
    assert 0 < body["deadlineIn"] <= 0.5          # the request deadline travelled with the command


async def test_slow_service_is_504(system):
    app, _, client, _ = system
    r = await client.post("/demo/nap", json={"seconds": 2})
    assert r.status_code == 504 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 504
    r = await client.post("/demo/nap", json={"seconds": 0.01})
    assert r.status_code == 200 and r.json() == {"slept": 0.01}


async def test_no_responder_is_503_with_retry_after(system):
    _, _, client, _ = system
    r = await client.get("/demo/missing")
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["type"] == "about:blank"


async def test_frozen_service_is_503_then_back(system):
    app, transport, client, _ = system
    key = control_key(SECRET)
    replies = await transport.broadcast_control("demo", sign(key, "demo", "freeze"), timeout=5, expect=1)
    assert replies, "the instance did not answer the freeze"
    r = await client.post("/demo/nap", json={"seconds": 0})
    assert r.status_code == 503 and r.headers["retry-after"]
    await transport.broadcast_control("demo", sign(key, "demo", "start"), timeout=5, expect=1)
    r = await client.post("/demo/nap", json={"seconds": 0})
    assert r.status_code == 200


async def test_cached_forward_serves_the_cache_without_calling(system):
    app, _, client, _ = system
    headers = auth(app, "cached-user")
    before = calls["echo"]
    r = await client.get("/demo/cached/first", headers=headers)
    assert r.status_code == 201 and calls["echo"] == before + 1
    await app.gw.cache.set(cache_key("demo", "echo", "cached-user"), b'{"from":"cache"}', version=1, ttl=30)
    r = await client.get("/demo/cached/second", headers=headers)
    assert r.status_code == 200 and r.content == b'{"from":"cache"}' and calls["echo"] == before + 1
    # another caller's key is not this one's
    r = await client.get("/demo/cached/third", headers=auth(app, "someone-else"))
    assert r.json()["text"] == "third"


async def test_rpc_latency_metrics_per_service(system):
    app, _, client, _ = system
    await client.post("/demo/nap", json={"seconds": 0})
    await client.post("/demo/nap", json={"seconds": 2})
    await client.get("/demo/missing")
    text = (await client.get("/metrics")).text
    assert sample(text, "workup_rpc_duration_seconds_count", service="demo", outcome="ok") == 1
    assert sample(text, "workup_rpc_duration_seconds_count", service="demo", outcome="timeout") == 1
    assert sample(text, "workup_rpc_duration_seconds_count", service="nobody", outcome="unavailable") == 1
    assert sample(text, "workup_http_requests_total", method="POST", route="/demo/nap", status="504") == 1


async def test_cache_outage_degrades_to_forwarding():
    import socket
    from workup.cache import RedisCache
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    transport = LocalTransport()
    app = make_app(transport, RedisCache(f"redis://127.0.0.1:{dead}/0"), blueprints=[bp])
    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_service(
            demo, Settings(), transport, concurrency=4, grace=0.5, control_secret=SECRET, task_status=task_status))
        async with served(app) as (client, _):
            r = await client.get("/demo/cached/through", headers=auth(app, "u-outage"))
            assert r.status_code == 201 and r.json()["text"] == "through"
        nursery.cancel_scope.cancel()
