"""Every users route of docs/api.md and its error codes, over real HTTP through the real gateway, with
the real payments and contracts services: embedded (in-process, SQLite) and distributed
(RabbitMQ, Redis, FerretDB, PostgreSQL, Cassandra)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from ._http import PASSWORD, system, unique_email

U, W = "/api/v1/users", "/api/v1/payments"


@pytest.fixture(params=["embedded", "distributed"])
def mode(request):
    return request.param


@pytest.fixture
async def sys(mode):
    async with system(mode) as s:
        yield s


async def wallet_role(settings, user_id):
    """Straight from payments' store: a wallet made by CreateWallet has the role; one that payments
    made on first use has none."""
    def read():
        if settings.payments_postgres_url:
            import psycopg
            with psycopg.connect(settings.payments_postgres_url) as db:
                return db.execute("SELECT role FROM wallets WHERE user_id = %s", (user_id,)).fetchone()
        with sqlite3.connect(Path(settings.data_dir) / "payments.sqlite3") as db:
            return db.execute("SELECT role FROM wallets WHERE user_id = ?", (user_id,)).fetchone()
    with trio.fail_after(10):
        while (row := await trio.to_thread.run_sync(read)) is None:
            await trio.sleep(0.1)
    return row[0]


def problem(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"]
    return body


def fields(r):
    return {e["field"] for e in problem(r, 400)["errors"]}


async def test_accounts(sys):
    """Register both roles, login, /me, validation, duplicates, tokens."""
    email = unique_email("MiXeD")
    r = await sys.http.post(f"{U}/clients/register", json={
        "email": email, "password": PASSWORD, "clientName": "Acme", "industry": "IT", "city": "Cairo",
        "description": "d", "employeeCount": 12})
    assert r.status_code == 201
    client = r.json()
    assert set(client) == {"authToken", "userId", "userType"} and client["userType"] == "CLIENT"

    r = await sys.http.post(f"{U}/freelancers/register", json={
        "email": unique_email("f"), "password": PASSWORD, "fullName": "Fay", "jobTitle": "Dev",
        "city": "Giza", "birthDate": "1990-05-06"})
    assert r.status_code == 201 and r.json()["userType"] == "FREELANCER"
    r = await sys.http.get(f"{U}/freelancer/profile", headers={"Authorization": f"Bearer {r.json()['authToken']}"})
    assert r.json()["birthDate"] == "1990-05-06" and r.json()["jobTitle"] == "Dev"

    r = await sys.http.post(f"{U}/login", json={"email": email.upper(), "password": PASSWORD})
    assert r.status_code == 200
    assert r.json()["userId"] == client["userId"] and r.json()["userType"] == "CLIENT" and r.json()["authToken"]
    me = await sys.http.get(f"{U}/me", headers={"Authorization": f"Bearer {r.json()['authToken']}"})
    assert me.json() == {"userId": client["userId"], "email": email, "userType": "CLIENT", "name": "Acme"}

    # payments created the wallet at registration (the row carries the role CreateWallet gave it)
    assert await wallet_role(sys.settings, client["userId"]) == "CLIENT"
    r = await sys.http.get(f"{W}/clients/me/wallet", headers={"Authorization": f"Bearer {client['authToken']}"})
    assert r.status_code == 200 and r.json()["balance"] == 0

    # login failures look the same
    wrong = await sys.http.post(f"{U}/login", json={"email": email, "password": "wrong-password"})
    unknown = await sys.http.post(f"{U}/login", json={"email": unique_email(), "password": "wrong-password"})
    assert problem(wrong, 401) == problem(unknown, 401)
    assert "email" in fields(await sys.http.post(f"{U}/login", json={"password": "x"}))

    # unique across roles and case
    for path, extra in (("clients", {"clientName": "B"}), ("freelancers", {"fullName": "B"})):
        problem(await sys.http.post(f"{U}/{path}/register",
                                    json={"email": email.lower(), "password": PASSWORD, **extra}), 409)

    # validation
    reg = f"{U}/clients/register"
    ok = {"email": unique_email(), "password": PASSWORD, "clientName": "A"}
    assert "email" in fields(await sys.http.post(reg, json={**ok, "email": "not-an-email"}))
    assert "password" in fields(await sys.http.post(reg, json={**ok, "password": "short"}))
    assert "clientName" in fields(await sys.http.post(reg, json={k: v for k, v in ok.items() if k != "clientName"}))
    assert "employeeCount" in fields(await sys.http.post(reg, json={**ok, "employeeCount": "many"}))
    problem(await sys.http.post(reg, json={**ok, "role": "ADMIN"}), 400)  # unknown field
    problem(await sys.http.post(reg, json=[ok]), 400)
    problem(await sys.http.post(reg, content=b"{not json", headers={"Content-Type": "application/json"}), 400)
    problem(await sys.http.post(reg, content=b"email=a", headers={"Content-Type": "text/plain"}), 415)
    problem(await sys.http.post(f"{U}/freelancers/register", json={
        "email": unique_email(), "password": PASSWORD, "fullName": "F", "birthDate": "06/05/1990"}), 400)
    problem(await sys.http.post(reg, content=b"{" + b" " * (1024 * 1024 + 10) + b"}",
                                headers={"Content-Type": "application/json"}), 413)

    # tokens
    problem(await sys.http.get(f"{U}/me"), 401)
    problem(await sys.http.get(f"{U}/me", headers={"Authorization": "Bearer not.a.token"}), 401)
    problem(await sys.http.post(f"{U}/login", json={"email": email, "password": PASSWORD},
                                headers={"Authorization": "Bearer garbage"}), 401)  # even on public routes
    admin = await sys.admin()
    me = await sys.http.get(f"{U}/me", headers=admin["auth"])
    assert me.status_code == 200 and me.json()["userType"] == "ADMIN" and me.json()["email"] == sys.admin_email
    problem(await sys.http.get(f"{U}/nope", headers=admin["auth"]), 404)


async def test_concurrent_registration_of_one_email(sys):
    email, statuses = unique_email("race"), []

    async def attempt(i):
        path, extra = (("clients", {"clientName": "C"}) if i % 2 else ("freelancers", {"fullName": "F"}))
        r = await sys.http.post(f"{U}/{path}/register",
                                json={"email": email if i % 3 else email.upper(), "password": PASSWORD, **extra})
        statuses.append(r.status_code)

    async with trio.open_nursery() as n:
        for i in range(8):
            n.start_soon(attempt, i)
    assert sorted(statuses) == [201] + [409] * 7


async def test_delete_me(mode):
    async with system(mode, ("users", "payments", "contracts")) as sys:
        await _delete_me(sys)


async def _delete_me(sys):
    f = await sys.register("FREELANCER")
    auth = f["auth"]
    problem(await sys.http.request("DELETE", f"{U}/me", json={"password": "wrong-password"}, headers=auth), 401)
    problem(await sys.http.request("DELETE", f"{U}/me", json={}, headers=auth), 400)
    assert (await sys.http.post(f"{W}/freelancers/me/wallet/deposit", json={"amount": 12.5},
                                headers=auth)).status_code == 200
    problem(await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=auth), 409)
    r = await sys.http.post(f"{W}/freelancers/me/wallet/withdraw", json={"amount": 12.5}, headers=auth)
    assert r.status_code == 200 and r.json()["balance"] == 0
    await sys.http.get(f"{U}/me", headers=auth)  # cached now
    viewer = await sys.register("CLIENT")
    assert (await sys.http.get(f"{U}/freelancers/{f['userId']}", headers=viewer["auth"])).status_code == 200
    r = await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=auth)
    assert r.status_code == 204 and r.content == b""
    problem(await sys.http.get(f"{U}/freelancers/{f['userId']}", headers=viewer["auth"]), 404)
    problem(await sys.http.get(f"{U}/me", headers=auth), 401)
    problem(await sys.http.get(f"{W}/freelancers/me/wallet", headers=auth), 401)  # every route family
    problem(await sys.http.post(f"{U}/login", json={"email": f["email"], "password": PASSWORD}), 401)
    problem(await sys.http.post(f"{U}/clients/register",
                                json={"email": f["email"], "password": PASSWORD, "clientName": "X"}), 409)
    admin = await sys.admin()
    problem(await sys.http.request("DELETE", f"{U}/me", json={"password": "x"}, headers=admin["auth"]), 403)


async def test_client_profile_photo_and_cached_me(sys):
    client, other = await sys.register("CLIENT"), await sys.register("FREELANCER")
    auth = client["auth"]
    r = await sys.http.get(f"{U}/client/profile", headers=auth)
    assert r.json() == {"name": "Acme", "email": client["email"], "city": None, "description": None,
                        "industry": None, "employeeCount": None, "photoLink": None}
    r = await sys.http.put(f"{U}/client/profile", json={"city": "Cairo", "employeeCount": 3}, headers=auth)
    assert r.status_code == 200 and r.json()["city"] == "Cairo" and r.json()["name"] == "Acme"
    r = await sys.http.post(f"{U}/client/profile", json={"industry": "Retail"}, headers=auth)  # POST alias
    assert r.json()["industry"] == "Retail" and r.json()["city"] == "Cairo"
    problem(await sys.http.put(f"{U}/client/profile", json={"email": other["email"].upper()}, headers=auth), 409)
    assert "email" in fields(await sys.http.put(f"{U}/client/profile", json={"email": "nope"}, headers=auth))
    problem(await sys.http.put(f"{U}/client/profile", json={"photoLink": "x"}, headers=auth), 400)
    new_email = unique_email("moved")
    assert (await sys.http.put(f"{U}/client/profile", json={"email": new_email},
                               headers=auth)).json()["email"] == new_email
    assert (await sys.http.post(f"{U}/login", json={"email": new_email, "password": PASSWORD})).status_code == 200

    assert (await sys.http.get(f"{U}/client/photo", headers=auth)).json() == {"photoLink": None}
    for method, link in (("PUT", "http://m/static/photos/a.png"), ("POST", "http://m/static/photos/b.png")):
        r = await sys.http.request(method, f"{U}/client/photo", json={"photoLink": link}, headers=auth)
        assert r.status_code == 200 and r.json() == {"photoLink": link}
    assert (await sys.http.get(f"{U}/client/profile", headers=auth)).json()["photoLink"].endswith("b.png")
    assert "photoLink" in fields(await sys.http.put(f"{U}/client/photo", json={}, headers=auth))

    # cached reads never outlive a write
    for name in ("First", "Second", "Third"):
        assert (await sys.http.get(f"{U}/me", headers=auth)).status_code == 200
        assert (await sys.http.put(f"{U}/client/profile", json={"name": name}, headers=auth)).json()["name"] == name
        assert (await sys.http.get(f"{U}/me", headers=auth)).json()["name"] == name
        assert (await sys.http.get(f"{U}/client/profile", headers=auth)).json()["name"] == name


async def test_freelancer_profile_brief_photo_resume_public(sys):
    f, client = await sys.register("FREELANCER"), await sys.register("CLIENT")
    auth = f["auth"]
    r = await sys.http.get(f"{U}/freelancer/profile", headers=auth)
    assert r.json() == {"fullName": "Fay", "email": f["email"], "city": None, "jobTitle": None,
                        "description": None, "birthDate": None, "skills": [], "languages": [],
                        "photoLink": None, "resumeLink": None}
    for method in ("PUT", "POST"):
        r = await sys.http.request(method, f"{U}/freelancer/profile",
                                   json={"fullName": f"Fay {method}", "birthDate": "2000-01-31"}, headers=auth)
        assert r.status_code == 200 and r.json()["fullName"] == f"Fay {method}"
    assert "birthDate" in fields(await sys.http.put(f"{U}/freelancer/profile", json={"birthDate": "2000-13-01"},
                                                    headers=auth))
    assert "fullName" in fields(await sys.http.put(f"{U}/freelancer/profile", json={"fullName": None},
                                                   headers=auth))
    r = await sys.http.get(f"{U}/freelancer/profile_briefs", headers=auth)
    assert r.json() == {"fullName": "Fay POST", "email": f["email"]}
    for kind, field in (("photo", "photoLink"), ("resume", "resumeLink")):
        assert (await sys.http.get(f"{U}/freelancer/{kind}", headers=auth)).json() == {field: None}
        for method in ("PUT", "POST"):
            link = f"http://m/static/x/{method}.pdf"
            r = await sys.http.request(method, f"{U}/freelancer/{kind}", json={field: link}, headers=auth)
            assert r.json() == {field: link}
        assert (await sys.http.get(f"{U}/freelancer/{kind}", headers=auth)).json() == {field: link}
    assert (await sys.http.get(f"{U}/freelancer/profile", headers=auth)).json()["resumeLink"] == link

    # public profile, cached, and fresh after a write
    await sys.http.post(f"{U}/freelancer/skills", json={"newSkill": "trio"}, headers=auth)
    r = await sys.http.get(f"{U}/freelancers/{f['userId']}", headers=client["auth"])
    assert r.json() == {"id": f["userId"], "fullName": "Fay POST", "city": None, "jobTitle": None,
                        "description": None, "skills": ["trio"], "languages": [], "photoLink": link}
    await sys.http.put(f"{U}/freelancer/profile", json={"city": "Luxor"}, headers=auth)
    assert (await sys.http.get(f"{U}/freelancers/{f['userId']}", headers=client["auth"])).json()["city"] == "Luxor"
    problem(await sys.http.get(f"{U}/freelancers/{f['userId']}"), 401)
    problem(await sys.http.get(f"{U}/freelancers/{client['userId']}", headers=client["auth"]), 404)
    problem(await sys.http.get(f"{U}/freelancers/0123456789abcdef0123456789abcdef", headers=client["auth"]), 404)
    problem(await sys.http.get(f"{U}/freelancers/{'x' * 101}", headers=client["auth"]), 400)


ITEMS = {
    "achievements": ({"achievementName": "Prize", "awardedBy": "ACM", "achievementDescription": "d",
                      "awardDate": "2021-02-03"}, "achievementId", "awardedBy"),
    "education": ({"schoolName": "MIT", "degree": "BSc", "major": "CS", "city": "Boston", "grade": "A",
                   "educationDescription": "d", "educationStartDate": "2010-09-01", "endDate": "2014-06-01"},
                  "educationId", "grade"),
    "experience": ({"companyName": "Co", "jobTitle": "Dev", "city": "Cairo", "experienceDescription": "d",
                    "employmentStart": "2015-01-01", "employmentEnd": "2019-01-01"}, "experienceId", "city"),
}
SETS = [("skills", "newSkill", "skillToRemove"), ("languages", "newLanguage", "languageToRemove")]


async def test_freelancer_lists(sys):
    f, other = await sys.register("FREELANCER"), await sys.register("FREELANCER")
    auth = f["auth"]
    for kind, (full, id_param, change) in ITEMS.items():
        path = f"{U}/freelancer/{kind}"
        assert (await sys.http.get(path, headers=auth)).json() == []
        first = next(iter(full))
        r = await sys.http.post(path, json=full, headers=auth)
        assert r.status_code == 201 and r.json() == {"id": r.json()["id"], **full}
        item = r.json()
        r = await sys.http.post(path, json={first: "Only first"}, headers=auth)
        minimal = r.json()
        assert r.status_code == 201 and all(v is None for k, v in minimal.items() if k not in ("id", first))
        assert first in fields(await sys.http.post(path, json={change: "x"}, headers=auth))
        assert (await sys.http.get(path, headers=auth)).json() == [item, minimal]

        r = await sys.http.put(path, json={"id": item["id"], change: "Changed"}, headers=auth)
        assert r.status_code == 200 and r.json() == {**item, change: "Changed"}
        problem(await sys.http.put(path, json={"id": item["id"], change: "Hijack"}, headers=other["auth"]), 404)
        problem(await sys.http.put(path, json={"id": "no-such-item", change: "x"}, headers=auth), 404)
        assert "id" in fields(await sys.http.put(path, json={change: "x"}, headers=auth))
        problem(await sys.http.delete(path, params={id_param: item["id"]}, headers=other["auth"]), 404)
        problem(await sys.http.delete(path, headers=auth), 400)
        assert (await sys.http.delete(path, params={id_param: item["id"]}, headers=auth)).status_code == 204
        problem(await sys.http.delete(path, params={id_param: item["id"]}, headers=auth), 404)
        assert (await sys.http.get(path, headers=auth)).json() == [minimal]
        assert (await sys.http.get(path, headers=other["auth"])).json() == []

    for kind, add, remove in SETS:
        path = f"{U}/freelancer/{kind}"
        assert (await sys.http.get(path, headers=auth)).json() == []
        for value in ("a", "b", "a"):
            r = await sys.http.post(path, json={add: value}, headers=auth)
            assert r.status_code == 201 and r.json() == value
        assert (await sys.http.get(path, headers=auth)).json() == ["a", "b"]
        assert add in fields(await sys.http.post(path, json={add: ""}, headers=auth))
        assert (await sys.http.delete(path, params={remove: "a"}, headers=auth)).status_code == 204
        problem(await sys.http.delete(path, params={remove: "a"}, headers=auth), 404)
        assert (await sys.http.get(path, headers=auth)).json() == ["b"]
        assert (await sys.http.get(f"{U}/freelancer/profile", headers=auth)).json()[kind] == ["b"]
