"""Every answer the scenarios get is documented in /openapi.json: the operation exists, the status
is listed, and the body validates against the documented schema (OpenAPI 3.1 / JSON Schema)."""

from __future__ import annotations

import re
from typing import Any

import httpx
from openapi_schema_validator import OAS31Validator

from ._harness import API, PASSWORD, Running, expect, login_admin, register_client, register_freelancer
from ._scenarios import idempotent_deposit, marketplace_flow, new_contract, search_paging

F = f"{API}/users/freelancer"


def _operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    for template, operations in doc["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            return operations[method.lower()]
    return None


def _lookup(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = doc
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return node


def _mismatch(doc: dict[str, Any], response: httpx.Response) -> str | None:
    method, path, status = response.request.method, response.request.url.path, response.status_code
    operation = _operation(doc, method, path)
    if operation is None:
        return f"{method} {path}: no such operation in /openapi.json"
    spec = operation["responses"].get(str(status))
    if spec is None:
        return f"{method} {path}: status {status} not documented (has {sorted(operation['responses'])})"
    while "$ref" in spec:
        spec = _lookup(doc, spec["$ref"])
    media_type = response.headers.get("content-type", "").split(";")[0].strip()
    content = spec.get("content") or {}
    if not response.content:
        return None
    if media_type not in content:
        return f"{method} {path} {status}: content type {media_type} not documented (has {sorted(content)})"
    schema = content[media_type].get("schema")
    if schema is None or not media_type.endswith("json"):
        return None
    validator = OAS31Validator({**schema, "components": doc.get("components", {})})
    errors = sorted(validator.iter_errors(response.json()), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        return f"{method} {path} {status}: {'/'.join(map(str, e.absolute_path)) or '$'}: {e.message[:200]}"
    return None


def test_answers_match_the_openapi_document(system: Running) -> None:
    doc = expect(httpx.get(system.base_url + "/openapi.json"), 200)
    answers: list[httpx.Response] = []

    def record(response: httpx.Response) -> None:
        response.read()
        answers.append(response)

    with httpx.Client(base_url=system.base_url, timeout=20, event_hooks={"response": [record]}) as http:
        marketplace_flow(http)
        search_paging(http, register_client(http), count=3, page_limit=2)
        f = register_freelancer(http)
        idempotent_deposit(http, f)
        http.post(f"{API}/users/login", json={"email": f.email, "password": PASSWORD})
        http.post(f"{API}/users/login", json={"email": f.email, "password": "wrong-password"})
        http.get(f"{API}/users/me", headers=f.auth)
        http.get(f"{F}/profile", headers=f.auth)
        http.get(f"{API}/users/freelancers/{f.id}", headers=f.auth)
        http.post(f"{F}/skills", json={"newSkill": "Go"}, headers=f.auth)
        http.get(f"{F}/skills", headers=f.auth)
        item = http.post(f"{F}/achievements", json={"achievementName": "A", "awardDate": "2020-01-01"}, headers=f.auth)
        http.get(f"{F}/achievements", headers=f.auth)
        http.put(f"{F}/achievements", json={"id": item.json()["id"], "awardedBy": "B"}, headers=f.auth)
        for name, item in (("education", {"schoolName": "S"}), ("experience", {"companyName": "C"})):
            added = http.post(f"{F}/{name}", json=item, headers=f.auth).json()
            http.get(f"{F}/{name}", headers=f.auth)
            http.delete(f"{F}/{name}", params={f"{name}Id": added["id"]}, headers=f.auth)
        http.post(f"{F}/languages", json={"newLanguage": "Norsk"}, headers=f.auth)
        http.delete(f"{F}/languages", params={"languageToRemove": "Norsk"}, headers=f.auth)
        http.get(f"{F}/profile_briefs", headers=f.auth)
        http.put(f"{F}/profile", json={"city": "Oslo"}, headers=f.auth)
        for path, field in (("photo", "photoLink"), ("resume", "resumeLink")):
            http.put(f"{F}/{path}", json={field: "http://x/y"}, headers=f.auth)
            http.get(f"{F}/{path}", headers=f.auth)
        c = register_client(http)
        http.get(f"{API}/users/client/profile", headers=c.auth)
        http.put(f"{API}/users/client/profile", json={"city": "Oslo"}, headers=c.auth)
        http.put(f"{API}/users/client/photo", json={"photoLink": "http://x/y"}, headers=c.auth)
        http.get(f"{API}/users/client/photo", headers=c.auth)
        txs = http.get(f"{API}/payments/freelancers/me/wallet/transactions", headers=f.auth).json()
        http.get(f"{API}/payments/freelancers/me/wallet/transactions/{txs[0]['id']}", headers=f.auth)
        http.post(f"{API}/payments/freelancers/me/wallet/withdraw", json={"amount": 999}, headers=f.auth)
        http.post(f"{API}/jobs", json={"title": 1}, headers=f.auth)
        client, freelancer, contract, milestones = new_contract(http, [5])
        cid = contract["id"]
        proposal_id = contract["proposalId"]
        http.get(f"{API}/proposals/{proposal_id}", headers=freelancer.auth)
        http.put(f"{API}/proposals/{proposal_id}", json={"coverLetter": "late"}, headers=freelancer.auth)
        http.get(f"{API}/jobs/me/proposals", headers=freelancer.auth)
        http.get(f"{API}/jobs/me", headers=client.auth)
        http.get(f"{API}/jobs/{contract['jobId']}/proposals", headers=client.auth)
        http.get(f"{API}/jobs", params={"pageLimit": 2})
        http.get(f"{API}/contracts/me", headers=client.auth)
        http.get(f"{API}/contracts/{cid}/print", headers=client.auth)
        t = http.post(f"{API}/contracts/{cid}/terminations/request", json={"reason": "r"}, headers=client.auth)
        http.get(f"{API}/contracts/{cid}/terminations", headers=freelancer.auth)
        http.post(f"{API}/contracts/terminations/{t.json()['id']}/handle", json={"chosenStatus": "REJECTED"},
                  headers=login_admin(http, system.env).auth)
        http.get(f"{API}/payments/clients/me/requests", headers=client.auth)
        http.get(f"{API}/payments/freelancers/me/transactions", headers=freelancer.auth)
        http.get(f"{API}/contracts/milestones/{milestones[0]['id']}", headers=freelancer.auth)
        http.post(f"{API}/contracts/milestones/{milestones[0]['id']}/evaluate", json={"evaluatedState": "ACCEPTED"},
                  headers=client.auth)
        http.request("DELETE", f"{API}/users/me", json={"password": PASSWORD}, headers=c.auth)
    mismatches = sorted({m for m in (_mismatch(doc, a) for a in answers) if m})
    assert len(answers) > 80
    assert not mismatches, "answers not as documented:\n" + "\n".join(mismatches)

