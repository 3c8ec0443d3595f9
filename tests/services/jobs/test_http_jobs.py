"""Jobs routes through the real gateway: validation, roles, reads, browse and search."""

from __future__ import annotations

import trio

from ._http import User
from ._services import new_id


async def test_create_validation_and_roles(system):
    client, freelancer = User("CLIENT"), User("FREELANCER")
    http = system.http
    ok = {"title": "T", "description": "D"}
    assert (await http.post("/api/v1/jobs", json=ok)).status_code == 401
    assert (await http.post("/api/v1/jobs", json=ok, headers=freelancer.auth)).status_code == 403
    assert (await http.post("/api/v1/jobs", json={"title": 1}, headers=freelancer.auth)).status_code == 403  # role first
    for bad in ({"title": "T"}, {"description": "D"}, {"title": " ", "description": "D"},
                {**ok, "budget": 10.555}, {**ok, "budget": 0}, {**ok, "budget": -5}, {**ok, "budget": 1e9 + 1},
                {**ok, "experience": "GURU"}, {**ok, "skills": "python"}, {**ok, "extra": 1}):
        r = await http.post("/api/v1/jobs", json=bad, headers=client.auth)
        assert r.status_code == 400, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = await http.post("/api/v1/jobs", json={"description": "D"}, headers=client.auth)
    assert any(e["field"] == "title" for e in r.json()["errors"])
    r = await http.post("/api/v1/jobs", content=b"title=x", headers={**client.auth, "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = await http.post("/api/v1/jobs", content=b"{nope", headers={**client.auth, "Content-Type": "application/json"})
    assert r.status_code == 400
    job = await system.job(client, location="Cairo", budget=1000000000, skills=["Python", "SQL"], experience="EXPERT")
    assert job["budget"] == 1000000000 and job["skills"] == ["Python", "SQL"] and job["active"] is True
    assert set(job) == {"id", "title", "description", "location", "budget", "skills", "experience", "clientId",
                        "active", "createdAt", "updatedAt"}
    assert job["clientId"] == client.id and job["createdAt"].endswith("Z")


async def test_get_and_mine(system):
    client, other = User("CLIENT"), User("CLIENT")
    http = system.http
    first = await system.job(client, budget=12.5)
    second = await system.job(client)
    await system.job(other)
    r = await http.get(f"/api/v1/jobs/{first['id']}", headers=User("FREELANCER").auth)
    assert r.status_code == 200 and r.json() == first
    assert (await http.get(f"/api/v1/jobs/{first['id']}", headers=other.auth)).json() == first   # cached now
    assert (await http.get(f"/api/v1/jobs/{first['id']}")).status_code == 401
    assert (await http.get(f"/api/v1/jobs/{new_id()}", headers=client.auth)).status_code == 404
    assert (await http.get("/api/v1/jobs/not-an-id", headers=client.auth)).status_code == 400
    mine = await http.get("/api/v1/jobs/me", headers=client.auth)
    assert [j["id"] for j in mine.json()] == [second["id"], first["id"]]
    assert (await http.get("/api/v1/jobs/me", headers=User("FREELANCER").auth)).status_code == 403
    assert (await http.get("/api/v1/jobs/me", headers=User("CLIENT").auth)).json() == []


async def test_search_rules(system):
    client = User("CLIENT")
    http = system.http
    tag = f"q{new_id()[:10]}"
    a = await system.job(client, title=f"Senior {tag} Rust engineer", description="compilers")
    b = await system.job(client, title="Frontend", description=f"React and {tag.upper()}", skills=["TypeScript"])
    await system.job(client, title="Other", description=f"{tag}x is not the word")

    async def ids(query: str, **params) -> list[str]:
        r = await http.get("/api/v1/jobs/search", params={"query": query, **params})
        assert r.status_code == 200, r.text
        return [j["id"] for j in r.json()["jobs"]]

    assert await ids(tag) == [b["id"], a["id"]]                 # newest first, whole words, any case
    assert await ids(f"{tag} RUST") == [a["id"]]                # every word must match
    assert await ids(f"{tag} typescript") == [b["id"]]          # skills count
    assert await ids(f"{tag} python") == []
    assert await ids(f"{tag[:-1]}") == []                       # no substring matches
    r = await http.get("/api/v1/jobs/search", params={"query": tag})
    assert set(r.json()["jobs"][0]) == {"id", "title", "description", "experience", "skills", "budget", "createdAt"}
    assert r.json()["pagingState"] is None
    for params in ({}, {"query": "  "}, {"query": tag, "pageLimit": 0}, {"query": tag, "pageLimit": 101},
                   {"query": tag, "pageLimit": "x"}, {"query": tag, "pagingState": "garbage!"}):
        assert (await http.get("/api/v1/jobs/search", params=params)).status_code == 400, params
    assert (await http.get("/api/v1/jobs/search", params={"query": tag}, headers={"Authorization": "Bearer x"})).status_code == 401
    r = await http.get("/api/v1/jobs/search", params={"query": tag, "pageLimit": 1})
    assert [j["id"] for j in r.json()["jobs"]] == [b["id"]] and r.json()["pagingState"]
    r = await http.get("/api/v1/jobs/search", params={"query": tag, "pageLimit": 1, "pagingState": r.json()["pagingState"]})
    assert [j["id"] for j in r.json()["jobs"]] == [a["id"]] and r.json()["pagingState"] is None


async def test_search_paging_250_jobs_no_repeats_no_gaps(system):
    client = User("CLIENT")
    tag = f"p{new_id()[:10]}"
    created: list[str] = []

    async def make(i: int, limiter: trio.CapacityLimiter) -> None:
        async with limiter:
            created.append((await system.job(client, title=f"{tag} job {i}"))["id"])
    limiter = trio.CapacityLimiter(16)
    async with trio.open_nursery() as n:
        for i in range(250):
            n.start_soon(make, i, limiter)
    seen: list[str] = []
    times: list[str] = []
    state = None
    for page in range(100):
        params = {"query": tag, "pageLimit": 17, **({"pagingState": state} if state else {})}
        r = await system.http.get("/api/v1/jobs/search", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        seen += [j["id"] for j in body["jobs"]]
        times += [j["createdAt"] for j in body["jobs"]]
        state = body["pagingState"]
        if page == 2:   # jobs created between pages never disturb the pages to come
            for i in range(3):
                await system.job(client, title=f"{tag} late {i}")
        if state is None:
            break
    assert len(seen) == len(set(seen)) == 250 and set(seen) == set(created)
    assert times == sorted(times, reverse=True)
    browse = await system.http.get("/api/v1/jobs", params={"pageLimit": 5})
    assert browse.status_code == 200 and len(browse.json()["jobs"]) == 5 and browse.json()["pagingState"]
    after = await system.http.get("/api/v1/jobs", params={"pageLimit": 5, "pagingState": browse.json()["pagingState"]})
    assert not {j["id"] for j in after.json()["jobs"]} & {j["id"] for j in browse.json()["jobs"]}
    assert after.json()["jobs"][0]["createdAt"] <= browse.json()["jobs"][-1]["createdAt"]
    for bad in ({"pageLimit": 0}, {"pageLimit": 101}, {"pagingState": "%%"}):
        assert (await system.http.get("/api/v1/jobs", params=bad)).status_code == 400, bad
