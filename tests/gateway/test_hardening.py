"""Issue 16, the gateway's rows, over real HTTP: token claims (nbf, aud, iss, lifetime), the
response headers (Cache-Control on token answers, nosniff everywhere), the abuse limits of login
and registration (429 with Retry-After, counters shared by every gateway on one Redis), and slow
clients (a connection trickling its headers, or idle, is closed within the bound)."""

from __future__ import annotations

import base64
import json
import secrets
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import httpx
import msgspec
import pytest
import trio
from jwcrypto import jwk, jws
from trio_websocket import ConnectionRejected, open_websocket_url

from workup.cache import Cache, MemoryCache, RedisCache, cache_key
from workup.gateway import create_app
from workup.messages import contracts as cm
from workup.messages import users as um
from workup.settings import Settings
from workup.testing import PASSWORD, System, fake_service, running_system, unique_email

from ._serve import KEY, make_app, served

ME = "/api/v1/users/me"
LOGIN = "/api/v1/users/login"
REGISTER = "/api/v1/users/clients/register"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(**over: object) -> str:
    now = int(time.time())
    claims = {"iss": "workup", "aud": "workup-api", "sub": "u" * 32, "role": "CLIENT", "iat": now, "exp": now + 60}
    claims.update(over)
    token = jws.JWS(json.dumps(claims).encode())
    token.add_signature(jwk.JWK(kty="oct", k=b64(KEY.encode())), alg="HS256",
                        protected={"alg": "HS256", "typ": "JWT"})
    return token.serialize(compact=True)


def assert_problem(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["x-content-type-options"] == "nosniff"
    body = r.json()
    assert body["status"] == status and body["type"] and body["title"]
    return body


# --- token claims ---------------------------------------------------------------------------------

@pytest.mark.parametrize("over, reason", [
    ({"nbf": int(time.time()) + 3600}, "not valid yet"),
    ({"aud": "another-api"}, "audience"),
    ({"aud": None}, "malformed"),
    ({"iss": "someone-else"}, "issuer"),
    ({"exp": 1e308}, "lifetime"),
    ({"exp": int(time.time()) + 48 * 3600}, "lifetime"),
])
async def test_odd_claims_are_401_problems(over, reason):
    cache = MemoryCache()
    await cache.set(cache_key("users", um.CACHED_ME, "u" * 32), b'{"id":"me"}', version=1, ttl=60)
    async with served(make_app(cache=cache)) as (http, _):
        good = await http.get(ME, headers={"Authorization": f"Bearer {signed()}"})
        assert good.status_code == 200 and good.json() == {"id": "me"}
        r = await http.get(ME, headers={"Authorization": f"Bearer {signed(**over)}"})
        assert reason in assert_problem(r, 401)["detail"]
        assert r.headers["www-authenticate"].startswith("Bearer")


async def test_lifetime_is_the_setting():
    async with served(make_app(settings=Settings(jwt_lifetime=600))) as (http, _):
        r = await http.get(ME, headers={"Authorization": f"Bearer {signed(exp=int(time.time()) + 601)}"})
        assert "lifetime" in assert_problem(r, 401)["detail"]


def claims_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


# --- headers, and the limits, on the real users service ---------------------------------------------

@pytest.fixture
async def system() -> AsyncIterator[System]:
    async with running_system("embedded", ["users", "payments"]) as sys:
        yield sys


@asynccontextmanager
async def gateway_of(sys: System, cache: Cache | None = None, **limits: object) -> AsyncIterator[httpx.AsyncClient]:
    """Another gateway on the system's transport and cache (or ``cache``), with limits of its own
    (and its own counters: a deployment name of its own unless given)."""
    limits.setdefault("amqp_prefix", f"t{secrets.token_hex(5)}")
    settings = msgspec.structs.replace(sys.settings, **limits)
    app = create_app(settings, sys.transport, cache or sys.cache, jwt_keys=sys.jwt_key)
    async with served(app) as (http, _):
        yield http


async def register(http: httpx.AsyncClient, email: str | None = None) -> httpx.Response:
    return await http.post(REGISTER, json={"email": email or unique_email("client"), "password": PASSWORD,
                                           "clientName": "Acme Ltd"})


async def test_token_answers_are_not_stored_and_carry_iss_aud(system):
    http = system.http
    email = unique_email("client")
    r = await register(http, email)
    assert r.status_code == 201
    assert r.headers["cache-control"] == "no-store" and r.headers["x-content-type-options"] == "nosniff"
    login = await http.post(LOGIN, json={"email": email, "password": PASSWORD})
    assert login.status_code == 200 and login.headers["cache-control"] == "no-store"
    claims = claims_of(login.json()["authToken"])
    assert (claims["iss"], claims["aud"]) == ("workup", "workup-api")
    assert claims["exp"] - claims["iat"] == system.settings.jwt_lifetime
    me = await http.get(ME, headers={"Authorization": f"Bearer {login.json()['authToken']}"})
    assert me.status_code == 200 and me.headers["x-content-type-options"] == "nosniff"
    assert "cache-control" not in me.headers


async def test_nosniff_on_every_kind_of_answer(system):
    http = system.http
    for path in ("/", "/health", "/openapi.json", "/metrics"):
        r = await http.get(path)
        assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff", path
    assert_problem(await http.get("/nowhere"), 404)
    assert_problem(await http.get(ME), 401)
    assert_problem(await http.delete(LOGIN), 405)
    assert_problem(await http.post(LOGIN, content=b"{", headers={"content-type": "application/json"}), 400)
    ws = system.base_url.replace("http://", "ws://") + "/api/v1/notifications"
    with pytest.raises(ConnectionRejected) as refused:
        async with open_websocket_url(ws):
            pass
    assert refused.value.status_code == 401
    assert (b"x-content-type-options", b"nosniff") in [(k.lower(), v) for k, v in refused.value.headers]


async def test_nosniff_on_the_plain_text_print():
    async def print_contract(ctx, req: cm.PrintContract) -> cm.ContractText:
        return cm.ContractText(text="<script>alert(1)</script>")

    async with running_system("embedded", [], fakes={"contracts": fake_service("contracts",
                                                                                 PrintContract=print_contract)}) as sys:
        token = sys.token_for("c" * 32, "CLIENT")
        r = await sys.http.get(f"/api/v1/contracts/{'a' * 32}/print", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert r.headers["x-content-type-options"] == "nosniff"


def assert_throttled(r: httpx.Response, window: float) -> None:
    body = assert_problem(r, 429)
    assert "too many attempts" in body["detail"]
    assert 1 <= int(r.headers["retry-after"]) <= window


async def test_login_limited_per_account_but_successes_never_count(system):
    account = await system.register_client()
    async with gateway_of(system, login_limit_account=3, login_limit_address=100, login_window=60) as http:
        good = {"email": account.email, "password": PASSWORD}
        bad = {"email": account.email.upper(), "password": "wrong-password-1"}   # any spelling: one account
        for _ in range(10):                      # a valid user is never held back by its own logins
            assert (await http.post(LOGIN, json=good)).status_code == 200
        for _ in range(3):
            assert_problem(await http.post(LOGIN, json=bad), 401)
        assert_throttled(await http.post(LOGIN, json=bad), 60)
        assert_throttled(await http.post(LOGIN, json=good), 60)     # the account is held, not the address
        other = await system.register_client()
        ok = await http.post(LOGIN, json={"email": other.email, "password": PASSWORD})
        assert ok.status_code == 200 and ok.json()["userId"] == other.id


async def test_login_limited_per_address(system):
    account = await system.register_client()
    async with gateway_of(system, login_limit_account=100, login_limit_address=4, login_window=60) as http:
        for i in range(4):                       # guessing over many accounts from one address
            assert_problem(await http.post(LOGIN, json={"email": unique_email(f"g{i}"), "password": "x" * 10}), 401)
        assert_throttled(await http.post(LOGIN, json={"email": unique_email("g"), "password": "x" * 10}), 60)
        assert_throttled(await http.post(LOGIN, json={"email": account.email, "password": PASSWORD}), 60)
    async with gateway_of(system, login_limit_address=4) as elsewhere:   # other counters: other limits
        assert (await elsewhere.post(LOGIN, json={"email": account.email, "password": PASSWORD})).status_code == 200


async def test_registration_limited_per_address(system):
    async with gateway_of(system, register_limit_address=3, register_window=120) as http:
        taken = unique_email("client")
        assert (await register(http, taken)).status_code == 201
        assert_problem(await register(http, taken), 409)        # a decided attempt counts
        assert (await register(http)).status_code == 201
        r = await register(http)
        assert_throttled(r, 120)
        assert int(r.headers["retry-after"]) > 60                 # the window's end, not a guess


async def test_limits_are_shared_by_every_gateway_on_one_redis(redis_url):
    async with running_system("distributed", ["users", "payments"]) as sys:
        account = await sys.register_client()
        limits = {"login_limit_account": 4, "login_window": 60, "amqp_prefix": f"t{secrets.token_hex(5)}"}
        own = RedisCache(redis_url)                 # the second gateway's own connections to Redis
        async with gateway_of(sys, **limits) as one, gateway_of(sys, own, **limits) as two:
            bad = {"email": account.email, "password": "wrong-password-1"}
            for http in (one, two, one, two):
                assert_problem(await http.post(LOGIN, json=bad), 401)
            assert_throttled(await two.post(LOGIN, json=bad), 60)
            assert_throttled(await one.post(LOGIN, json={"email": account.email, "password": PASSWORD}), 60)
        await own.aclose()


# --- slow clients ---------------------------------------------------------------------------------

BOUND = 2.0


@asynccontextmanager
async def slow_gateway() -> AsyncIterator[tuple[str, int]]:
    async with served(make_app(settings=Settings(http_idle_timeout=BOUND))) as (_, url):
        host, port = url.removeprefix("http://").rsplit(":", 1)
        yield host, int(port)


async def closed_after(stream: trio.SocketStream, trickle: bytes | None, limit: float) -> float:
    """Seconds until the server closes ``stream`` (EOF or reset) while we send one byte of
    ``trickle`` a second; fails past ``limit``."""
    started = trio.current_time()
    sent = 0
    with trio.fail_after(limit):
        while True:
            if trickle is not None and sent < len(trickle):
                try:
                    await stream.send_all(trickle[sent:sent + 1])
                except trio.BrokenResourceError:
                    return trio.current_time() - started
                sent += 1
            with trio.move_on_after(1.0):
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return trio.current_time() - started
                if data == b"":
                    return trio.current_time() - started
                assert trickle is None or not data.startswith(b"HTTP/1.1 2"), data


async def test_a_trickled_header_is_closed_within_the_bound():
    async with slow_gateway() as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
        took = await closed_after(stream, request, BOUND + 3)
        assert took <= BOUND + 1.5
        await stream.aclose()


async def test_idle_connections_are_closed_within_the_bound():
    async with slow_gateway() as (host, port):
        silent = await trio.open_tcp_stream(host, port)            # never sends a byte
        assert await closed_after(silent, None, BOUND + 3) <= BOUND + 1.5
        kept = await trio.open_tcp_stream(host, port)              # one answer, then idle keep-alive
        await kept.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await read_answer(kept)).startswith(b"HTTP/1.1 200")
        assert await closed_after(kept, None, BOUND + 3) <= BOUND + 1.5


async def read_answer(stream: trio.SocketStream) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += await stream.receive_some(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head


@pytest.mark.parametrize("first", [
    b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/v1/users/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    b"POST /nowhere HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
])
async def test_a_trickle_after_a_first_answer_is_closed_within_the_bound(first):
    # the idle timer is restarted after every answer (hypercorn's restart used to be cancelled by
    # quart-trio: one quick request, then trickled headers, held the connection for ever)
    async with slow_gateway() as (host, port):
        stream = await trio.open_tcp_stream(host, port)
        await stream.send_all(first)
        assert (await read_answer(stream)).split(b" ")[1] in (b"200", b"400", b"404")
        took = await closed_after(stream, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200, BOUND + 3)
        assert took <= BOUND + 1.5
        await stream.aclose()


async def test_a_client_sending_its_request_at_once_is_served():
    async with slow_gateway() as (_, _port), httpx.AsyncClient(base_url=f"http://127.0.0.1:{_port}") as http:
        for _ in range(3):
            assert (await http.get("/health")).status_code == 200
            await trio.sleep(BOUND / 2)                             # idle, but less than the bound
