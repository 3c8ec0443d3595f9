"""Gateway core per docs/api.md: operations routes, OpenAPI, 404/401/403 rules, 400/413/415, problem+json."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from ._harness import API, JWT_KEY, Account, bearer, expect, problem, resign

PUBLIC = [
    ("POST", f"{API}/users/clients/register"),
    ("POST", f"{API}/users/freelancers/register"),
    ("POST", f"{API}/users/login"),
    ("GET", f"{API}/jobs/search?query=shop"),
    ("GET", f"{API}/jobs"),
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
]

# every route of docs/api.md, `{me}` written out as the OpenAPI document must do
ROUTES = """
POST /api/v1/users/clients/register
POST /api/v1/users/freelancers/register
POST /api/v1/users/login
GET,DELETE /api/v1/users/me
GET,PUT /api/v1/users/client/profile
GET,PUT /api/v1/users/client/photo
GET,PUT /api/v1/users/freelancer/profile
GET /api/v1/users/freelancer/profile_briefs
GET,PUT /api/v1/users/freelancer/photo
GET,PUT /api/v1/users/freelancer/resume
GET /api/v1/users/freelancers/{}
GET,POST,PUT,DELETE /api/v1/users/freelancer/achievements
GET,POST,PUT,DELETE /api/v1/users/freelancer/education
GET,POST,PUT,DELETE /api/v1/users/freelancer/experience
GET,POST,DELETE /api/v1/users/freelancer/skills
GET,POST,DELETE /api/v1/users/freelancer/languages
GET,POST /api/v1/jobs
GET /api/v1/jobs/{}
GET /api/v1/jobs/search
GET /api/v1/jobs/me
GET,POST /api/v1/jobs/{}/proposals
GET /api/v1/jobs/me/proposals
POST /api/v1/jobs/{}/proposals/{}/accept
GET,PUT /api/v1/proposals/{}
GET /api/v1/contracts/me
GET /api/v1/contracts/{}
GET /api/v1/contracts/{}/milestones
GET /api/v1/contracts/milestones/{}
POST /api/v1/contracts/milestones/{}/progress
POST /api/v1/contracts/milestones/{}/evaluate
POST /api/v1/contracts/{}/terminations/request
GET /api/v1/contracts/{}/terminations
POST /api/v1/contracts/terminations/{}/handle
GET /api/v1/contracts/{}/print
GET /api/v1/payments/requests/{}
POST /api/v1/payments/requests/{}/pay
GET /api/v1/notifications
"""
for _me in ("clients/me", "freelancers/me"):
    ROUTES += f"""
GET /api/v1/payments/{_me}/wallet
POST /api/v1/payments/{_me}/wallet/deposit
POST /api/v1/payments/{_me}/wallet/withdraw
GET /api/v1/payments/{_me}/wallet/transactions
GET /api/v1/payments/{_me}/wallet/transactions/{{}}
GET /api/v1/payments/{_me}/requests
GET /api/v1/payments/{_me}/transactions
"""


def test_welcome(http: httpx.Client) -> None:
    assert http.get("/").status_code == 200


def test_health(http: httpx.Client) -> None:
    assert http.get("/health").status_code == 200


def test_metrics_prometheus_text(http: httpx.Client) -> None:
    http.get("/")
    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain"), r.headers["content-type"]
    assert re.search(r"^# TYPE \w+ (counter|gauge|histogram|summary|untyped)$", r.text, re.M), r.text[:500]
    samples = [line for line in r.text.splitlines() if line and not line.startswith("#")]
    assert samples and all(re.match(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? \S+", s) for s in samples), samples[:5]


def test_openapi_document(http: httpx.Client) -> None:
    doc = expect(http.get("/openapi.json"), 200)
    assert isinstance(doc, dict) and str(doc.get("openapi", "")).startswith("3.1"), str(doc)[:200]
    paths = doc["paths"]
    assert all(p.startswith("/api/v1/") or p in ("/", "/health", "/metrics", "/openapi.json") for p in paths), list(paths)
    assert not [p for p in paths if "{me}" in p], "`{me}` must be written out for each role"
    normalised = {re.sub(r"\{[^}]*\}", "{}", p): {m.upper() for m in ops} for p, ops in paths.items()}
    missing = []
    for line in filter(None, ROUTES.splitlines()):
        methods, path = line.split()
        for method in methods.split(","):
            if method not in normalised.get(path, set()):
                missing.append(f"{method} {path}")
    assert not missing, f"routes missing from /openapi.json: {missing}"


@pytest.mark.parametrize("path", ["/nope", f"{API}/nope", f"{API}/users/nope/deeper", f"{API}/payments/nope"])
def test_unknown_route_404_with_and_without_token(http: httpx.Client, client: Account, path: str) -> None:
    problem(http.get(path), 404)
    problem(http.get(path, headers=client.auth), 404)
    problem(http.post(path, json={}, headers=client.auth), 404)


# --- 401 ---------------------------------------------------------------------------------------

def _bad_tokens(good: str) -> dict[str, dict[str, str]]:
    now = int(time.time())
    return {
        "malformed": bearer("not-a-jwt"),
        "wrong-scheme": {"Authorization": f"Token {good}"},
        "empty-bearer": {"Authorization": "Bearer"},
        "expired": bearer(resign(good, exp=now - 3600, iat=now - 7200)),
        "badly-signed": bearer(resign(good, key="some-other-key-" + "x" * 20)),
        "tampered-role": bearer(good.split(".")[0] + "." + resign(good, role="ADMIN").split(".")[1] + "."
                                + good.split(".")[2]),
    }


def test_forged_token_with_right_key_is_accepted(http: httpx.Client, client: Account) -> None:
    """Control for the 401 tests below: resigning unchanged claims with the configured key works."""
    assert JWT_KEY
    expect(http.get(f"{API}/users/me", headers=bearer(resign(client.token))), 200)


@pytest.mark.parametrize("kind", ["malformed", "wrong-scheme", "empty-bearer", "expired", "badly-signed", "tampered-role"])
def test_bad_token_401_on_protected_route(http: httpx.Client, client: Account, kind: str) -> None:
    problem(http.get(f"{API}/users/me", headers=_bad_tokens(client.token)[kind]), 401)


def test_missing_token_401(http: httpx.Client) -> None:
    for path in (f"{API}/users/me", f"{API}/contracts/me", f"{API}/payments/clients/me/wallet", f"{API}/jobs/me"):
        problem(http.get(path), 401)


@pytest.mark.parametrize("method,path", PUBLIC, ids=[f"{m} {p}" for m, p in PUBLIC])
@pytest.mark.parametrize("kind", ["malformed", "expired", "badly-signed"])
def test_bad_token_401_on_public_route(http: httpx.Client, client: Account, method: str, path: str, kind: str) -> None:
    body = {"email": "x@example.com", "password": "whatever-123"} if method == "POST" else None
    problem(http.request(method, path, json=body, headers=_bad_tokens(client.token)[kind]), 401)


# --- role before ids ---------------------------------------------------------------------------

WRONG_ROLE = [
    ("FREELANCER", "POST", "/jobs", {"title": "t", "description": "d"}),
    ("CLIENT", "POST", "/jobs/bogus-id/proposals", {}),
    ("FREELANCER", "POST", "/jobs/bogus-id/proposals/bogus-id/accept", None),
    ("CLIENT", "GET", "/jobs/me/proposals", None),
    ("FREELANCER", "GET", "/jobs/me", None),
    ("CLIENT", "PUT", "/proposals/bogus-id", {"coverLetter": "x"}),
    ("CLIENT", "POST", "/contracts/milestones/bogus-id/progress", None),
    ("FREELANCER", "POST", "/contracts/milestones/bogus-id/evaluate", {"evaluatedState": "ACCEPTED"}),
    ("CLIENT", "POST", "/contracts/terminations/bogus-id/handle", {"chosenStatus": "ACCEPTED"}),
    ("FREELANCER", "POST", "/payments/requests/bogus-id/pay", None),
    ("ADMIN", "GET", "/payments/requests/bogus-id", None),
    ("CLIENT", "GET", "/payments/freelancers/me/wallet/transactions/bogus-id", None),
    ("FREELANCER", "GET", "/payments/clients/me/wallet/transactions/bogus-id", None),
    ("ADMIN", "GET", "/payments/clients/me/wallet", None),
    ("ADMIN", "DELETE", "/users/me", {"password": "whatever-123"}),
    ("FREELANCER", "GET", "/users/client/profile", None),
    ("CLIENT", "GET", "/users/freelancer/profile", None),
    ("CLIENT", "PUT", "/users/freelancer/achievements", {"id": "bogus-id", "achievementName": "x"}),
    ("CLIENT", "DELETE", "/users/freelancer/education?educationId=bogus-id", None),
]


@pytest.mark.parametrize("role,method,path,body", WRONG_ROLE, ids=[f"{r} {m} {p}" for r, m, p, _ in WRONG_ROLE])
def test_wrong_role_403_before_id(http: httpx.Client, client: Account, freelancer: Account, admin: Account,
                                  role: str, method: str, path: str, body: object) -> None:
    caller = {"CLIENT": client, "FREELANCER": freelancer, "ADMIN": admin}[role]
    problem(http.request(method, API + path, json=body, headers=caller.auth), 403)


# --- body errors -------------------------------------------------------------------------------

def test_malformed_json_400(http: httpx.Client, client: Account) -> None:
    headers = {"Content-Type": "application/json"}
    problem(http.post(f"{API}/users/login", content=b'{"email": "a@b.c", ', headers=headers), 400)
    problem(http.post(f"{API}/jobs", content=b"{not json}", headers={**headers, **client.auth}), 400)


BAD_UTF8 = {
    f"{API}/users/login": b'{"email": "\xff\xfe@example.com", "password": "whatever-123"}',
    f"{API}/jobs": b'{"title": "\xff\xfe", "description": "d"}',
    f"{API}/payments/clients/me/wallet/deposit": b'{"amount": 1, "description": "\xff\xfe"}',
}


@pytest.mark.parametrize("path", BAD_UTF8)
def test_invalid_utf8_in_json_400(http: httpx.Client, client: Account, path: str) -> None:
    headers = {**client.auth, "Content-Type": "application/json"} if "login" not in path else {"Content-Type": "application/json"}
    problem(http.post(path, content=BAD_UTF8[path], headers=headers), 400)


def test_non_object_json_400(http: httpx.Client, client: Account) -> None:
    problem(http.post(f"{API}/jobs", json=["title", "description"], headers=client.auth), 400)


def test_body_over_1_mib_413(http: httpx.Client, client: Account) -> None:
    big = {"title": "big", "description": "x" * (1024 * 1024 + 10)}
    problem(http.post(f"{API}/jobs", json=big, headers=client.auth), 413)
    problem(http.post(f"{API}/users/clients/register", json=big), 413)
    expect(http.get(f"{API}/users/me", headers=client.auth), 200)     # the connection stays usable


def test_non_json_body_415(http: httpx.Client, client: Account) -> None:
    problem(http.post(f"{API}/jobs", content=b"title=x&description=y", headers={
        **client.auth, "Content-Type": "application/x-www-form-urlencoded"}), 415)
    problem(http.post(f"{API}/users/login", content=b"hello", headers={"Content-Type": "text/plain"}), 415)


def test_problem_shape_on_validation(http: httpx.Client) -> None:
    body = problem(http.post(f"{API}/users/login", json={"email": "someone@example.com"}), 400, fields=("password",))
    assert isinstance(body["type"], str) and isinstance(body["title"], str) and isinstance(body["detail"], str)
