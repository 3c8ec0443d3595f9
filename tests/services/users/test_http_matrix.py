"""Role matrix and random-JSON fuzzing of every users route, over real HTTP."""

from __future__ import annotations

import json
import os
import random

import pytest

from workup.gateway.routes.users import ROUTES
from workup.messages import users as m

from ._http import PASSWORD, system, unique_email

ROLES = ("CLIENT", "FREELANCER", "ADMIN")
# bodies per route: fewer over the network (every request crosses RabbitMQ and FerretDB)
ITERATIONS = {"embedded": 12, "distributed": 4}


@pytest.fixture(params=["embedded", "distributed"])
async def sys(request):
    async with system(request.param) as s:
        yield s


async def _identities(sys):
    return {"CLIENT": (await sys.register("CLIENT"))["auth"],
            "FREELANCER": (await sys.register("FREELANCER"))["auth"],
            "ADMIN": (await sys.admin())["auth"]}


def _url(route):
    return route.path.replace("<id>", "not-a-real-id")


async def test_role_matrix(sys):
    """Each role against each protected users route: wrong role 403 (before the body or id is
    looked at), anonymous 401, an allowed role never 401/403."""
    who = await _identities(sys)
    checked = 0
    for route in ROUTES:
        if route.roles is None:
            continue
        allowed = route.roles or ROLES
        r = await sys.http.request(route.method, _url(route), content=b"{bad json")
        assert r.status_code == 401, (route, r.status_code)
        for role in ROLES:
            r = await sys.http.request(route.method, _url(route), content=b"{bad json",
                                       headers={**who[role], "Content-Type": "application/json"})
            if role in allowed:
                assert r.status_code not in (401, 403) and r.status_code < 500, (route, role, r.text)
            else:
                assert r.status_code == 403, (route, role, r.status_code, r.text)
            checked += 1
    assert checked == 3 * sum(1 for r in ROUTES if r.roles is not None)


def _random_value(rng: random.Random, depth: int = 0):
    kinds = ["str", "int", "float", "bool", "null", "big", "date", "unicode"]
    if depth < 2:
        kinds += ["list", "dict"]
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(rng.choice("ab @.\x00-_/\\\"'%") for _ in range(rng.randint(0, 12)))
    if kind == "unicode":
        return "".join(chr(rng.choice([rng.randint(0x20, 0x7e), rng.randint(0x80, 0xd7ff), 0x1f600, 0]))
                       for _ in range(rng.randint(1, 8)))
    if kind == "int":
        return rng.randint(-10, 10)
    if kind == "big":
        return rng.choice([2**63, -(2**63) - 1, 10**30, 1e308, -0.0])
    if kind == "float":
        return rng.uniform(-1e6, 1e6)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "date":
        return rng.choice(["2020-01-01", "2020-02-30", "0000-00-00", "1990-1-1", "9999-12-31T00:00:00Z"])
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["email", "password", "id", "x", "fullName", "newSkill"]): _random_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def _mutated_body(rng: random.Random, route) -> object:
    """A body near the route's struct (its field names, random values), or any JSON at all."""
    names = [f.encode_name for f in __import__("msgspec").structs.fields(route.command)]
    if not names or rng.random() < 0.25:
        return _random_value(rng)
    body = {name: _random_value(rng) for name in names if rng.random() < 0.8}
    if "email" in body and rng.random() < 0.5:
        body["email"] = unique_email("fz")
    if "password" in body and rng.random() < 0.5 and route.command is not m.DeleteMe:
        body["password"] = PASSWORD  # (never closes the fuzzing accounts)
    if rng.random() < 0.2:
        body[rng.choice(["extra", "userId", "role"])] = _random_value(rng)
    return body


async def test_fuzz_every_users_route_body(sys):
    """Random JSON into every users route that takes a body or query: never a 5xx."""
    seed = int(os.environ.get("WORKUP_FUZZ_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    who = await _identities(sys)
    per_route = int(os.environ.get("WORKUP_FUZZ_ITERATIONS", ITERATIONS[sys.mode]))
    statuses: dict[int, int] = {}
    for route in ROUTES:
        if route.source == "none":
            continue
        role = route.roles[0] if route.roles else None
        headers = {"Content-Type": "application/json", **(who[role] if role else {})}
        for _ in range(per_route):
            body = _mutated_body(rng, route)
            if route.source == "query":
                params = {k: json.dumps(v) if not isinstance(v, str) else v
                          for k, v in (body.items() if isinstance(body, dict) else [])}
                r = await sys.http.request(route.method, _url(route), params=params, headers=headers)
            else:
                r = await sys.http.request(route.method, _url(route), content=json.dumps(body).encode(),
                                           headers=headers)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            assert r.status_code < 500, (seed, route.method, route.path, body, r.status_code, r.text)
    assert statuses.get(400, 0) > 0, statuses  # the fuzzer does reach validation
