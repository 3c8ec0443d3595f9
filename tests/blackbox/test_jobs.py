"""Jobs and proposals per docs/api.md: fields, validation, search/browse paging, proposal rules, accept."""

from __future__ import annotations

import uuid

import httpx
import pytest

from ._harness import (API, Account, expect, has_fields, is_money, problem, register_client,
    register_freelancer, timestamps)
from ._scenarios import (JOB_FIELDS, PROPOSAL_FIELDS, SEARCH_ITEM_FIELDS, accept, post_job, proposal_body,
    propose, search_paging)

J = f"{API}/jobs"


def test_post_and_get_job(http: httpx.Client, client: Account, freelancer: Account, admin: Account) -> None:
    job = has_fields(post_job(http, client, budget=1234.56, skills=["python", "trio"], experience="EXPERT"), JOB_FIELDS)
    assert (job["clientId"], job["active"], job["experience"], job["skills"]) == (client.id, True, "EXPERT", ["python", "trio"])
    is_money(job["budget"], 1234.56)
    timestamps(job, "createdAt", "updatedAt")
    for viewer in (client, freelancer, admin):
        assert expect(http.get(f"{J}/{job['id']}", headers=viewer.auth), 200) == job
    problem(http.get(f"{J}/{job['id']}"), 401)


def test_post_job_minimal(http: httpx.Client, client: Account) -> None:
    job = expect(http.post(J, json={"title": "T", "description": "D"}, headers=client.auth), 201)
    has_fields(job, JOB_FIELDS)
    assert job["active"] is True and job["skills"] == []


BAD_JOBS = [
    ({"description": "d"}, "title"),
    ({"title": "t"}, "description"),
    ({"title": 5, "description": "d"}, "title"),
    ({"title": "t", "description": "d", "experience": "GURU"}, "experience"),
    ({"title": "t", "description": "d", "skills": "python"}, "skills"),
    ({"title": "t", "description": "d", "budget": 10.005}, "budget"),
    ({"title": "t", "description": "d", "budget": 0}, "budget"),
    ({"title": "t", "description": "d", "budget": -5}, "budget"),
    ({"title": "t", "description": "d", "budget": 1_000_000_000.01}, "budget"),
    ({"title": "t", "description": "d", "budget": "100"}, "budget"),
]


@pytest.mark.parametrize("body,field", BAD_JOBS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_JOBS)])
def test_post_job_validation_400(http: httpx.Client, client: Account, body: dict, field: str) -> None:
    problem(http.post(J, json=body, headers=client.auth), 400, fields=(field,))


def test_budget_upper_bound_is_inclusive(http: httpx.Client, client: Account) -> None:
    is_money(post_job(http, client, budget=1_000_000_000)["budget"], 1_000_000_000)


def test_get_job_404(http: httpx.Client, client: Account) -> None:
    problem(http.get(f"{J}/{client.id}", headers=client.auth), 404)      # a user id is no job id


def test_my_jobs_newest_first_including_inactive(http: httpx.Client) -> None:
    c, f = register_client(http), register_freelancer(http)
    first = post_job(http, c, title="first")
    second = post_job(http, c, title="second")
    accept(http, c, first["id"], propose(http, f, first["id"])["id"])
    mine = expect(http.get(f"{J}/me", headers=c.auth), 200)
    assert isinstance(mine, list) and [j["id"] for j in mine] == [second["id"], first["id"]]
    assert [j["active"] for j in mine] == [True, False]
    has_fields(mine[0], JOB_FIELDS)


# --- search and browse -----------------------------------------------------------------------------

def test_search_paging_no_repeats_no_gaps(http: httpx.Client) -> None:
    search_paging(http, register_client(http))


def test_search_matching_rules(http: httpx.Client) -> None:
    c, f = register_client(http), register_freelancer(http)
    w1, w2 = "zq" + uuid.uuid4().hex[:8], "zq" + uuid.uuid4().hex[:8]
    in_title = post_job(http, c, title=f"Need {w1} and {w2}", description="x", skills=[])
    in_desc = post_job(http, c, title="other", description=f"about {w1.upper()} work", skills=[])
    in_skills = post_job(http, c, title="third", description="y", skills=[w1, w2])
    spread = post_job(http, c, title=f"{w2}: urgent!", description=f"({w1.capitalize()}).", skills=[])
    post_job(http, c, title=f"prefix {w1}suffix", description="not whole word", skills=[])
    inactive = post_job(http, c, title=f"closed {w1}", description="z", skills=[])
    accept(http, c, inactive["id"], propose(http, f, inactive["id"])["id"])

    def ids(query: str) -> list[str]:
        page = expect(http.get(f"{J}/search", params={"query": query, "pageLimit": 100}), 200)
        assert page["pagingState"] is None
        return [j["id"] for j in page["jobs"]]

    assert ids(w1) == [spread["id"], in_skills["id"], in_desc["id"], in_title["id"]]
    assert ids(f"{w2.upper()} {w1}") == [spread["id"], in_skills["id"], in_title["id"]]
    assert ids(f"{w1} zqabsent{uuid.uuid4().hex[:6]}") == []
    item = expect(http.get(f"{J}/search", params={"query": w2}), 200)["jobs"][1]
    assert set(item) == SEARCH_ITEM_FIELDS, item


@pytest.mark.parametrize("params", [
    {}, {"query": ""}, {"query": "   "}, {"query": "x", "pageLimit": 0}, {"query": "x", "pageLimit": 101},
    {"query": "x", "pageLimit": "ten"}, {"query": "x", "pagingState": "!!garbage!!"},
], ids=["no-query", "empty", "blank", "limit-0", "limit-101", "limit-text", "bad-state"])
def test_search_bad_params_400(http: httpx.Client, params: dict) -> None:
    problem(http.get(f"{J}/search", params=params), 400)


def test_search_default_and_max_page_limit(http: httpx.Client) -> None:
    c = register_client(http)
    word = "zq" + uuid.uuid4().hex[:8]
    for i in range(21):
        post_job(http, c, title=f"{word} {i}", description="d")
    page = expect(http.get(f"{J}/search", params={"query": word}), 200)
    assert len(page["jobs"]) == 20 and page["pagingState"] is not None
    page = expect(http.get(f"{J}/search", params={"query": word, "pageLimit": 100}), 200)
    assert len(page["jobs"]) == 21 and page["pagingState"] is None


def test_browse_active_jobs_paged(http: httpx.Client) -> None:
    c, f = register_client(http), register_freelancer(http)
    closed = post_job(http, c, title="browse closed")
    accept(http, c, closed["id"], propose(http, f, closed["id"])["id"])
    job = post_job(http, c, title="browse me")
    first = has_fields(expect(http.get(J, params={"pageLimit": 5}), 200), "jobs pagingState")
    assert isinstance(first["jobs"], list) and 1 <= len(first["jobs"]) <= 5
    assert job["id"] in [j["id"] for j in first["jobs"]]        # newest first: on the first page
    seen, state = [], None
    for _ in range(100):
        page = expect(http.get(J, params={"pageLimit": 100, **({"pagingState": state} if state else {})}), 200)
        seen += [j["id"] for j in page["jobs"]]
        state = page["pagingState"]
        if state is None:
            break
    assert state is None and len(seen) == len(set(seen)), "browse repeated jobs or never ended"
    assert job["id"] in seen and closed["id"] not in seen
    problem(http.get(J, params={"pageLimit": 0}), 400)


# --- proposals ---------------------------------------------------------------------------------------

def test_propose_201_and_reads(http: httpx.Client, admin: Account) -> None:
    c, f, other = register_client(http), register_freelancer(http), register_freelancer(http)
    job = post_job(http, c)
    body = proposal_body([100, 250.75], attachments=[{"name": "cv.pdf", "url": "http://x/cv.pdf"}])
    p = has_fields(expect(http.post(f"{J}/{job['id']}/proposals", json=body, headers=f.auth), 201), PROPOSAL_FIELDS)
    assert (p["status"], p["jobId"], p["freelancerId"], p["jobDuration"]) == ("PENDING", job["id"], f.id, body["jobDuration"])
    assert p["milestones"] == body["milestones"] and p["attachments"] == body["attachments"]
    timestamps(p, "createdAt", "updatedAt")
    theirs = propose(http, other, job["id"])

    assert {x["id"] for x in expect(http.get(f"{J}/{job['id']}/proposals", headers=c.auth), 200)} == {p["id"], theirs["id"]}
    assert [x["id"] for x in expect(http.get(f"{J}/{job['id']}/proposals", headers=f.auth), 200)] == [p["id"]]
    problem(http.get(f"{J}/{job['id']}/proposals", headers=register_client(http).auth), 403)
    assert [x["id"] for x in expect(http.get(f"{J}/me/proposals", headers=f.auth), 200)] == [p["id"]]
    for viewer in (f, c, admin):
        assert expect(http.get(f"{API}/proposals/{p['id']}", headers=viewer.auth), 200)["id"] == p["id"]
    problem(http.get(f"{API}/proposals/{p['id']}", headers=other.auth), 403)
    problem(http.get(f"{API}/proposals/{p['id']}", headers=register_client(http).auth), 403)
    problem(http.get(f"{API}/proposals/{job['id']}", headers=f.auth), 404)          # a job id is no proposal id
    problem(http.get(f"{J}/{f.id}/proposals", headers=f.auth), 404)


def test_propose_404_no_job_and_409_duplicate_pending(http: httpx.Client, client: Account) -> None:
    f = register_freelancer(http)
    problem(http.post(f"{J}/{f.id}/proposals", json=proposal_body([10]), headers=f.auth), 404)
    job = post_job(http, client)
    assert propose(http, f, job["id"])["attachments"] == []
    problem(http.post(f"{J}/{job['id']}/proposals", json=proposal_body([10]), headers=f.auth), 409)


BAD_PROPOSALS = [
    ({"coverLetter": None}, "coverLetter"),
    ({"jobDuration": "FOREVER"}, "jobDuration"),
    ({"milestones": []}, "milestones"),
    ({"milestones": [{"description": "m", "amount": 1, "dueDate": "2027-01-01"}] * 51}, "milestones"),
    ({"milestones": [{"description": "m", "amount": 1.001, "dueDate": "2027-01-01"}]}, "amount"),
    ({"milestones": [{"description": "m", "amount": 0, "dueDate": "2027-01-01"}]}, "amount"),
    ({"milestones": [{"description": "m", "amount": 1e9 + 1, "dueDate": "2027-01-01"}]}, "amount"),
    ({"milestones": [{"description": "m", "amount": "10", "dueDate": "2027-01-01"}]}, "amount"),
    ({"milestones": [{"description": "m", "amount": 10, "dueDate": "next week"}]}, "dueDate"),
    ({"milestones": [{"amount": 10, "dueDate": "2027-01-01"}]}, "description"),
    ({"attachments": [{"name": "a"}]}, "url"),
]


@pytest.mark.parametrize("change,field", BAD_PROPOSALS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_PROPOSALS)])
def test_propose_validation_400(http: httpx.Client, client: Account, freelancer: Account, change: dict, field: str) -> None:
    job = post_job(http, client)
    body = {k: v for k, v in {**proposal_body([10]), **change}.items() if v is not None}
    problem(http.post(f"{J}/{job['id']}/proposals", json=body, headers=freelancer.auth), 400, fields=(field,))


def test_update_proposal(http: httpx.Client) -> None:
    c, f = register_client(http), register_freelancer(http)
    job = post_job(http, c)
    p = propose(http, f, job["id"])
    updated = expect(http.put(f"{API}/proposals/{p['id']}", json={"coverLetter": "better"}, headers=f.auth), 200)
    assert (updated["coverLetter"], updated["milestones"], updated["status"]) == ("better", p["milestones"], "PENDING")
    problem(http.put(f"{API}/proposals/{p['id']}", json={"jobDuration": "SOON"}, headers=f.auth), 400,
            fields=("jobDuration",))
    problem(http.put(f"{API}/proposals/{p['id']}", json={"milestones": []}, headers=f.auth), 400, fields=("milestones",))
    changed = proposal_body([5, 6])["milestones"]
    assert expect(http.put(f"{API}/proposals/{p['id']}", json={"milestones": changed}, headers=f.auth), 200)["milestones"] == changed
    problem(http.put(f"{API}/proposals/{p['id']}", json={"coverLetter": "mine"}, headers=register_freelancer(http).auth), 403)
    accept(http, c, job["id"], p["id"])
    problem(http.put(f"{API}/proposals/{p['id']}", json={"coverLetter": "late"}, headers=f.auth), 409)


def test_accept_rules(http: httpx.Client) -> None:
    c, f1, f2, f3 = register_client(http), register_freelancer(http), register_freelancer(http), register_freelancer(http)
    job = post_job(http, c)
    p1, p2 = propose(http, f1, job["id"], [100, 200]), propose(http, f2, job["id"])
    problem(http.post(f"{J}/{job['id']}/proposals/{p1['id']}/accept", headers=register_client(http).auth), 403)
    answer = accept(http, c, job["id"], p1["id"])
    has_fields(answer, "contractId job proposal")
    assert answer["job"]["id"] == job["id"] and answer["job"]["active"] is False
    assert answer["proposal"] == {**answer["proposal"], "id": p1["id"], "status": "ACCEPTED"}
    assert accept(http, c, job["id"], p1["id"]) == answer                           # idempotent
    assert expect(http.get(f"{API}/proposals/{p2['id']}", headers=f2.auth), 200)["status"] == "REJECTED"
    assert expect(http.get(f"{API}/proposals/{p1['id']}", headers=f1.auth), 200)["status"] == "ACCEPTED"
    assert expect(http.get(f"{J}/{job['id']}", headers=c.auth), 200)["active"] is False
    problem(http.post(f"{J}/{job['id']}/proposals/{p2['id']}/accept", headers=c.auth), 409)
    problem(http.post(f"{J}/{job['id']}/proposals", json=proposal_body([10]), headers=f3.auth), 409)
    contract = expect(http.get(f"{API}/contracts/{answer['contractId']}", headers=c.auth), 200)
    assert (contract["proposalId"], contract["jobId"], contract["jobTitle"]) == (p1["id"], job["id"], job["title"])
    assert len(contract["milestoneIds"]) == 2


def test_accept_rejected_proposal_409(http: httpx.Client) -> None:
    c, f1, f2 = register_client(http), register_freelancer(http), register_freelancer(http)
    job = post_job(http, c)
    p1, p2 = propose(http, f1, job["id"]), propose(http, f2, job["id"])
    accept(http, c, job["id"], p1["id"])
    problem(http.post(f"{J}/{job['id']}/proposals/{p2['id']}/accept", headers=c.auth), 409)
