"""Every users route of API.md and its error codes, over real HTTP through the gateway."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio

from ._http import ADMIN_EMAIL, PASSWORD, unique_email, users_system

U = "/api/v1/users"


@pytest.fixture(params=["sqlite", "mongo"])
async def sys(request, tmp_path):
    async with users_system(str(tmp_path), request.param) as s:
        yield s


def problem(r, status):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["title"]
    return body


def fields(r):
    return {e["field"] for e in problem(r, 400)["errors"]}


async def test_register_both_roles_and_login(sys):
    email = unique_email("Mixed").replace("mixed", "MiXeD")
    r = await sys.http.post(f"{U}/clients/register", json={
        "email": email, "password": PASSWORD, "clientName": "Acme", "industry": "IT", "city": "Cairo",
        "description": "d", "employeeCount": 12})
    assert r.status_code == 201
    body = r.json()
    assert set(body) == {"authToken", "userId", "userType"} and body["userType"] == "CLIENT"
    assert sys.payments.wallets_for(body["userId"]) == 1

    r = await sys.http.post(f"{U}/freelancers/register", json={
        "email": unique_email("f"), "password": PASSWORD, "fullName": "Fay", "jobTitle": "Dev",
        "city": "Giza", "birthDate": "1990-05-06"})
    assert r.status_code == 201 and r.json()["userType"] == "FREELANCER"
    fid, ftoken = r.json()["userId"], r.json()["authToken"]
    r = await sys.http.get(f"{U}/freelancer/profile", headers={"Authorization": f"Bearer {ftoken}"})
    assert r.json()["birthDate"] == "1990-05-06" and r.json()["jobTitle"] == "Dev"

    r = await sys.http.post(f"{U}/login", json={"email": email.upper(), "password": PASSWORD})
    assert r.status_code == 200
    assert r.json()["userId"] == body["userId"] and r.json()["userType"] == "CLIENT" and r.json()["authToken"]
    me = await sys.http.get(f"{U}/me", headers={"Authorization": f"Bearer {r.json()['authToken']}"})
    assert me.json() == {"userId": body["userId"], "email": email, "userType": "CLIENT", "name": "Acme"}
    assert fid != body["userId"]


async def test_register_validation(sys):
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


async def test_email_unique_across_roles_and_case(sys):
    email = unique_email("dup")
    await sys.register("CLIENT", email)
    for path, extra in (("clients", {"clientName": "B"}), ("freelancers", {"fullName": "B"})):
        r = await sys.http.post(f"{U}/{path}/register", json={"email": email.upper(), "password": PASSWORD, **extra})
        problem(r, 409)


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


async def test_login_failures_look_the_same(sys):
    user = await sys.register()
    wrong = await sys.http.post(f"{U}/login", json={"email": user["email"], "password": "wrong-password"})
    unknown = await sys.http.post(f"{U}/login", json={"email": unique_email(), "password": "wrong-password"})
    assert problem(wrong, 401) == problem(unknown, 401)
    assert "userId" not in wrong.text
    assert "email" in fields(await sys.http.post(f"{U}/login", json={"password": "x"}))


async def test_me_and_tokens(sys):
    problem(await sys.http.get(f"{U}/me"), 401)
    problem(await sys.http.get(f"{U}/me", headers={"Authorization": "Bearer not.a.token"}), 401)
    problem(await sys.http.post(f"{U}/login", json={"email": "a@b.co", "password": "x"},
                                headers={"Authorization": "Bearer garbage"}), 401)  # even on public routes
    admin = await sys.admin()
    me = await sys.http.get(f"{U}/me", headers=admin["auth"])
    assert me.status_code == 200 and me.json()["userType"] == "ADMIN" and me.json()["email"] == ADMIN_EMAIL


async def test_me_cache_sees_every_write(sys):
    client = await sys.register("CLIENT")
    for name in ("First", "Second", "Third"):
        assert (await sys.http.get(f"{U}/me", headers=client["auth"])).status_code == 200
        r = await sys.http.put(f"{U}/client/profile", json={"name": name}, headers=client["auth"])
        assert r.json()["name"] == name
        assert (await sys.http.get(f"{U}/me", headers=client["auth"])).json()["name"] == name
        assert (await sys.http.get(f"{U}/client/profile", headers=client["auth"])).json()["name"] == name


async def test_delete_me(sys):
    client = await sys.register("CLIENT")
    auth = client["auth"]
    problem(await sys.http.request("DELETE", f"{U}/me", json={"password": "wrong-password"}, headers=auth), 401)
    problem(await sys.http.request("DELETE", f"{U}/me", json={}, headers=auth), 400)
    sys.contracts.active.add(client["userId"])
    problem(await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=auth), 409)
    sys.contracts.active.clear()
    sys.payments.balances[client["userId"]] = Decimal("5.00")
    problem(await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=auth), 409)
    sys.payments.balances[client["userId"]] = Decimal("0")
    await sys.http.get(f"{U}/me", headers=auth)  # cached now
    r = await sys.http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=auth)
    assert r.status_code == 204 and r.content == b""
    problem(await sys.http.get(f"{U}/me", headers=auth), 401)
    problem(await sys.http.post(f"{U}/login", json={"email": client["email"], "password": PASSWORD}), 401)
    problem(await sys.http.post(f"{U}/freelancers/register",
                                json={"email": client["email"], "password": PASSWORD, "fullName": "X"}), 409)
    admin = await sys.admin()
    problem(await sys.http.request("DELETE", f"{U}/me", json={"password": "x"}, headers=admin["auth"]), 403)


async def test_client_profile_and_photo(sys):
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
    assert (await sys.http.put(f"{U}/client/profile", json={"email": new_email}, headers=auth)).json()["email"] == new_email
    assert (await sys.http.post(f"{U}/login", json={"email": new_email, "password": PASSWORD})).status_code == 200

    assert (await sys.http.get(f"{U}/client/photo", headers=auth)).json() == {"photoLink": None}
    for method, link in (("PUT", "http://m/static/photos/a.png"), ("POST", "http://m/static/photos/b.png")):
        r = await sys.http.request(method, f"{U}/client/photo", json={"photoLink": link}, headers=auth)
        assert r.status_code == 200 and r.json() == {"photoLink": link}
    assert (await sys.http.get(f"{U}/client/profile", headers=auth)).json()["photoLink"].endswith("b.png")
    assert "photoLink" in fields(await sys.http.put(f"{U}/client/photo", json={}, headers=auth))


async def test_freelancer_profile_brief_photo_resume(sys):
    f = await sys.register("FREELANCER")
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


async def test_public_freelancer_profile(sys):
    f, client = await sys.register("FREELANCER"), await sys.register("CLIENT")
    await sys.http.post(f"{U}/freelancer/skills", json={"newSkill": "trio"}, headers=f["auth"])
    r = await sys.http.get(f"{U}/freelancers/{f['userId']}", headers=client["auth"])
    assert r.json() == {"id": f["userId"], "fullName": "Fay", "city": None, "jobTitle": None,
                        "description": None, "skills": ["trio"], "languages": [], "photoLink": None}
    await sys.http.put(f"{U}/freelancer/profile", json={"city": "Luxor"}, headers=f["auth"])
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


@pytest.mark.parametrize("kind", list(ITEMS))
async def test_freelancer_item_lists(sys, kind):
    full, id_param, change = ITEMS[kind]
    f, other = await sys.register("FREELANCER"), await sys.register("FREELANCER")
    path, auth = f"{U}/freelancer/{kind}", f["auth"]
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
    r = await sys.http.delete(path, params={id_param: item["id"]}, headers=auth)
    assert r.status_code == 204
    problem(await sys.http.delete(path, params={id_param: item["id"]}, headers=auth), 404)
    assert (await sys.http.get(path, headers=auth)).json() == [minimal]
    assert (await sys.http.get(path, headers=other["auth"])).json() == []


@pytest.mark.parametrize("kind,add,remove", [("skills", "newSkill", "skillToRemove"),
                                             ("languages", "newLanguage", "languageToRemove")])
async def test_freelancer_sets(sys, kind, add, remove):
    f = await sys.register("FREELANCER")
    path, auth = f"{U}/freelancer/{kind}", f["auth"]
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
