"""Users routes per docs/api.md: registration, login, /me, profiles, photos, resume, account closing."""

from __future__ import annotations

import httpx
import pytest

from ._harness import (API, PASSWORD, Account, expect, has_fields, problem, register_client,
    register_freelancer, unique_email)
from ._scenarios import deposit, new_contract

U = f"{API}/users"
CLIENT_PROFILE = "name email city description industry employeeCount photoLink"
FREELANCER_PROFILE = "fullName email city jobTitle description birthDate skills languages photoLink resumeLink"
PUBLIC_PROFILE = "id fullName city jobTitle description skills languages photoLink"


def test_register_client_201(http: httpx.Client) -> None:
    body = {"email": unique_email("c"), "password": PASSWORD, "clientName": "Acme", "industry": "IT",
            "city": "Oslo", "description": "We build", "employeeCount": 12}
    answer = has_fields(expect(http.post(f"{U}/clients/register", json=body), 201), "authToken userId userType")
    assert answer["userType"] == "CLIENT"
    assert isinstance(answer["userId"], str) and isinstance(answer["authToken"], str)


def test_register_freelancer_201(http: httpx.Client) -> None:
    body = {"email": unique_email("f"), "password": PASSWORD, "fullName": "Fay", "jobTitle": "Dev",
            "city": "Rome", "birthDate": "1990-04-01"}
    answer = has_fields(expect(http.post(f"{U}/freelancers/register", json=body), 201), "authToken userId userType")
    assert answer["userType"] == "FREELANCER"


BAD_REGISTRATIONS = [
    ("clients", {"password": PASSWORD, "clientName": "A"}, "email"),
    ("clients", {"email": "x@example.com", "clientName": "A"}, "password"),
    ("clients", {"email": "x@example.com", "password": PASSWORD}, "clientName"),
    ("clients", {"email": "not-an-email", "password": PASSWORD, "clientName": "A"}, "email"),
    ("clients", {"email": "x@example.com", "password": "short7!", "clientName": "A"}, "password"),
    ("clients", {"email": "x@example.com", "password": PASSWORD, "clientName": "A", "employeeCount": "many"},
     "employeeCount"),
    ("clients", {"email": 42, "password": PASSWORD, "clientName": "A"}, "email"),
    ("freelancers", {"email": "x@example.com", "password": PASSWORD}, "fullName"),
    ("freelancers", {"email": "x@example.com", "password": PASSWORD, "fullName": "F", "birthDate": "01/02/1990"},
     "birthDate"),
    ("freelancers", {"email": "x@example.com", "password": ["p"], "fullName": "F"}, "password"),
]


@pytest.mark.parametrize("kind,body,field", BAD_REGISTRATIONS, ids=[f"{k}-{f}-{i}" for i, (k, _, f) in enumerate(BAD_REGISTRATIONS)])
def test_register_validation_400(http: httpx.Client, kind: str, body: dict, field: str) -> None:
    problem(http.post(f"{U}/{kind}/register", json=body), 400, fields=(field,))


def test_password_of_exactly_8_chars_is_enough(http: httpx.Client) -> None:
    body = {"email": unique_email("eight"), "password": "12345678", "clientName": "A"}
    expect(http.post(f"{U}/clients/register", json=body), 201)


def test_duplicate_email_409_case_insensitive_across_roles(http: httpx.Client) -> None:
    email = unique_email("dup")
    register_client(http, email=email)
    body = {"email": email.upper(), "password": PASSWORD, "fullName": "Other"}
    problem(http.post(f"{U}/freelancers/register", json=body), 409)
    problem(http.post(f"{U}/clients/register", json={"email": email, "password": PASSWORD, "clientName": "B"}), 409)


def test_login(http: httpx.Client) -> None:
    account = register_freelancer(http)
    answer = expect(http.post(f"{U}/login", json={"email": account.email.upper(), "password": PASSWORD}), 200)
    has_fields(answer, "authToken userId userType")
    assert (answer["userId"], answer["userType"]) == (account.id, "FREELANCER")
    expect(http.get(f"{U}/me", headers={"Authorization": f"Bearer {answer['authToken']}"}), 200)


def test_login_401_same_answer_for_unknown_email_and_wrong_password(http: httpx.Client, client: Account) -> None:
    wrong = problem(http.post(f"{U}/login", json={"email": client.email, "password": "wrong-password"}), 401)
    unknown = problem(http.post(f"{U}/login", json={"email": unique_email("nobody"), "password": "wrong-password"}), 401)
    assert (wrong["title"], wrong["detail"], wrong["type"]) == (unknown["title"], unknown["detail"], unknown["type"])


def test_login_missing_field_or_wrong_type_400(http: httpx.Client) -> None:
    problem(http.post(f"{U}/login", json={"password": PASSWORD}), 400, fields=("email",))
    problem(http.post(f"{U}/login", json={"email": "a@example.com", "password": 12345678}), 400, fields=("password",))


def test_me_for_each_role(http: httpx.Client, client: Account, freelancer: Account, admin: Account) -> None:
    for account in (client, freelancer, admin):
        body = has_fields(expect(http.get(f"{U}/me", headers=account.auth), 200), "userId email userType name")
        assert (body["userId"], body["userType"], body["email"].lower()) == (account.id, account.role, account.email.lower())
    assert [expect(http.get(f"{U}/me", headers=a.auth), 200)["name"] for a in (client, freelancer)] == ["Acme Ltd", "Fay Lancer"]


def test_client_profile_get_put_post_alias(http: httpx.Client) -> None:
    c = register_client(http, city="Oslo", industry="IT")
    body = has_fields(expect(http.get(f"{U}/client/profile", headers=c.auth), 200), CLIENT_PROFILE)
    assert (body["name"], body["city"], body["industry"]) == ("Acme Ltd", "Oslo", "IT")
    body = expect(http.put(f"{U}/client/profile", json={"city": "Bergen", "employeeCount": 5}, headers=c.auth), 200)
    has_fields(body, CLIENT_PROFILE)
    assert (body["city"], body["employeeCount"], body["industry"], body["name"]) == ("Bergen", 5, "IT", "Acme Ltd")
    body = expect(http.post(f"{U}/client/profile", json={"description": "new"}, headers=c.auth), 200)
    assert (body["description"], body["city"]) == ("new", "Bergen")
    assert expect(http.get(f"{U}/client/profile", headers=c.auth), 200)["description"] == "new"


def test_profile_email_change_duplicate_409_and_invalid_400(http: httpx.Client, freelancer: Account) -> None:
    c = register_client(http)
    problem(http.put(f"{U}/client/profile", json={"email": freelancer.email.upper()}, headers=c.auth), 409)
    problem(http.put(f"{U}/client/profile", json={"email": "nope"}, headers=c.auth), 400, fields=("email",))
    problem(http.put(f"{U}/client/profile", json={"employeeCount": "ten"}, headers=c.auth), 400,
            fields=("employeeCount",))
    new = unique_email("moved")
    assert expect(http.put(f"{U}/client/profile", json={"email": new}, headers=c.auth), 200)["email"] == new
    expect(http.post(f"{U}/login", json={"email": new, "password": PASSWORD}), 200)


@pytest.mark.parametrize("role,path,field", [
    ("CLIENT", "client/photo", "photoLink"),
    ("FREELANCER", "freelancer/photo", "photoLink"),
    ("FREELANCER", "freelancer/resume", "resumeLink"),
])
def test_links_get_put_post(http: httpx.Client, role: str, path: str, field: str) -> None:
    account = register_client(http) if role == "CLIENT" else register_freelancer(http)
    has_fields(expect(http.get(f"{U}/{path}", headers=account.auth), 200), field)
    link = f"http://127.0.0.1:8910/static/x/{field}.bin"
    assert expect(http.put(f"{U}/{path}", json={field: link}, headers=account.auth), 200) == {field: link}
    assert expect(http.get(f"{U}/{path}", headers=account.auth), 200)[field] == link
    assert expect(http.post(f"{U}/{path}", json={field: link + "2"}, headers=account.auth), 200)[field] == link + "2"
    problem(http.put(f"{U}/{path}", json={field: 7}, headers=account.auth), 400, fields=(field,))


def test_freelancer_profile_and_briefs(http: httpx.Client) -> None:
    f = register_freelancer(http, jobTitle="Dev", city="Rome", birthDate="1990-04-01")
    body = has_fields(expect(http.get(f"{U}/freelancer/profile", headers=f.auth), 200), FREELANCER_PROFILE)
    assert (body["fullName"], body["birthDate"], body["skills"], body["languages"]) == ("Fay Lancer", "1990-04-01", [], [])
    body = expect(http.put(f"{U}/freelancer/profile", json={"jobTitle": "Lead", "description": "hi"}, headers=f.auth), 200)
    has_fields(body, FREELANCER_PROFILE)
    assert (body["jobTitle"], body["description"], body["city"]) == ("Lead", "hi", "Rome")
    assert expect(http.post(f"{U}/freelancer/profile", json={"city": "Pisa"}, headers=f.auth), 200)["city"] == "Pisa"
    problem(http.put(f"{U}/freelancer/profile", json={"birthDate": "1990-13-45"}, headers=f.auth), 400,
            fields=("birthDate",))
    other = register_client(http)
    problem(http.put(f"{U}/freelancer/profile", json={"email": other.email.upper()}, headers=f.auth), 409)
    briefs = has_fields(expect(http.get(f"{U}/freelancer/profile_briefs", headers=f.auth), 200), "fullName email")
    assert (briefs["fullName"], briefs["email"].lower()) == ("Fay Lancer", f.email.lower())


def test_public_freelancer_profile(http: httpx.Client, client: Account, admin: Account) -> None:
    f = register_freelancer(http, jobTitle="Dev", city="Rome")
    for viewer in (client, admin, f):
        body = has_fields(expect(http.get(f"{U}/freelancers/{f.id}", headers=viewer.auth), 200), PUBLIC_PROFILE)
        assert (body["id"], body["fullName"], body["city"]) == (f.id, "Fay Lancer", "Rome")
        assert "email" not in body and "password" not in body
    problem(http.get(f"{U}/freelancers/{f.id}"), 401)
    problem(http.get(f"{U}/freelancers/{client.id}", headers=client.auth), 404)   # a client is not a freelancer


@pytest.mark.parametrize("path", ["client/profile", "client/photo"])
def test_client_routes_refuse_other_roles(http: httpx.Client, freelancer: Account, admin: Account, path: str) -> None:
    for account in (freelancer, admin):
        problem(http.get(f"{U}/{path}", headers=account.auth), 403)


@pytest.mark.parametrize("path", ["freelancer/profile", "freelancer/profile_briefs", "freelancer/photo",
                                  "freelancer/resume", "freelancer/skills", "freelancer/achievements"])
def test_freelancer_routes_refuse_other_roles(http: httpx.Client, client: Account, admin: Account, path: str) -> None:
    for account in (client, admin):
        problem(http.get(f"{U}/{path}", headers=account.auth), 403)


# --- closing an account ----------------------------------------------------------------------------

def test_delete_me_closes_the_account(http: httpx.Client) -> None:
    f = register_freelancer(http)
    second = expect(http.post(f"{U}/login", json={"email": f.email, "password": PASSWORD}), 200)["authToken"]
    problem(http.request("DELETE", f"{U}/me", json={"password": "wrong-password"}, headers=f.auth), 401)
    problem(http.request("DELETE", f"{U}/me", json={}, headers=f.auth), 400, fields=("password",))
    r = http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=f.auth)
    assert r.status_code == 204 and not r.content, (r.status_code, r.text)
    for token in (f.token, second):
        problem(http.get(f"{U}/me", headers={"Authorization": f"Bearer {token}"}), 401)
    problem(http.get(f"{API}/payments/freelancers/me/wallet", headers=f.auth), 401)
    problem(http.get(f"{API}/jobs/search", params={"query": "x"}, headers=f.auth), 401)     # also on public routes
    problem(http.post(f"{U}/login", json={"email": f.email, "password": PASSWORD}), 401)
    problem(http.post(f"{U}/clients/register", json={"email": f.email, "password": PASSWORD, "clientName": "X"}), 409)


def test_delete_me_409_with_balance(http: httpx.Client) -> None:
    c = register_client(http)
    expect(deposit(http, c, 5), 200)
    problem(http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=c.auth), 409)
    expect(http.get(f"{U}/me", headers=c.auth), 200)            # still open


def test_delete_me_409_while_party_to_active_contract(http: httpx.Client, admin: Account) -> None:
    client, freelancer, contract, _ = new_contract(http, [10])
    for account in (client, freelancer):
        problem(http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=account.auth), 409)
        expect(http.get(f"{U}/me", headers=account.auth), 200)
    t = expect(http.post(f"{API}/contracts/{contract['id']}/terminations/request", json={"reason": "bye"},
                         headers=client.auth), 201)
    expect(http.post(f"{API}/contracts/terminations/{t['id']}/handle", json={"chosenStatus": "ACCEPTED"},
                     headers=admin.auth), 200)
    for account in (client, freelancer):                   # no ACTIVE contract any more
        r = http.request("DELETE", f"{U}/me", json={"password": PASSWORD}, headers=account.auth)
        assert r.status_code == 204, (r.status_code, r.text)
