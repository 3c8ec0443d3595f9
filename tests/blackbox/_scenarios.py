"""Scenarios from docs/api.md, shared by the embedded suite and the distributed subset."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from ._harness import (API, Account, expect, has_fields, is_money, problem, register_client,
    register_freelancer, timestamps, unique_email, wait_until)

JOB_FIELDS = "id title description location budget skills experience clientId active createdAt updatedAt"
SEARCH_ITEM_FIELDS = {"id", "title", "description", "experience", "skills", "budget", "createdAt"}
PROPOSAL_FIELDS = ("id jobId freelancerId coverLetter jobDuration status milestones attachments "
                   "createdAt updatedAt")
CONTRACT_FIELDS = "id jobId jobTitle proposalId clientId freelancerId status milestoneIds createdAt"
MILESTONE_FIELDS = "id contractId description amount dueDate status"
REQUEST_FIELDS = "id clientId freelancerId contractId milestoneId amount status createdAt updatedAt"
WALLET_TX_FIELDS = "id amount transactionType description paymentTransactionId createdAt"
PAYMENT_TX_FIELDS = "id paymentRequestId amount status createdAt"


def me(account: Account) -> str:
    return f"{API}/payments/" + ("clients/me" if account.role == "CLIENT" else "freelancers/me")


def post_job(http: httpx.Client, client: Account, **fields: Any) -> dict[str, Any]:
    body = {"title": "Build a shop", "description": "A small web shop", "budget": 1500,
            "skills": ["python"], "experience": "INTERMEDIATE", "location": "Remote", **fields}
    return expect(http.post(f"{API}/jobs", json=body, headers=client.auth), 201)


def proposal_body(amounts: list[float], **fields: Any) -> dict[str, Any]:
    milestones = [{"description": f"part {i + 1}", "amount": a, "dueDate": f"2027-0{i % 9 + 1}-15"}
                  for i, a in enumerate(amounts)]
    return {"coverLetter": "I can do this", "jobDuration": "LESS_THAN_A_MONTH",
            "milestones": milestones, **fields}


def propose(http: httpx.Client, freelancer: Account, job_id: str, amounts: list[float] = (100,),
            **fields: Any) -> dict[str, Any]:
    r = http.post(f"{API}/jobs/{job_id}/proposals", json=proposal_body(list(amounts), **fields),
                  headers=freelancer.auth)
    return expect(r, 201)


def accept(http: httpx.Client, client: Account, job_id: str, proposal_id: str) -> dict[str, Any]:
    return expect(http.post(f"{API}/jobs/{job_id}/proposals/{proposal_id}/accept", headers=client.auth), 200)


def new_contract(http: httpx.Client, amounts: list[float]) -> tuple[Account, Account, dict[str, Any], list[dict]]:
    """A fresh client and freelancer with an ACTIVE contract whose milestones have `amounts`."""
    client, freelancer = register_client(http), register_freelancer(http)
    job = post_job(http, client)
    proposal = propose(http, freelancer, job["id"], amounts)
    contract_id = accept(http, client, job["id"], proposal["id"])["contractId"]
    contract = expect(http.get(f"{API}/contracts/{contract_id}", headers=client.auth), 200)
    milestones = expect(http.get(f"{API}/contracts/{contract_id}/milestones", headers=client.auth), 200)
    return client, freelancer, contract, milestones


def progress(http: httpx.Client, freelancer: Account, milestone_id: str) -> httpx.Response:
    return http.post(f"{API}/contracts/milestones/{milestone_id}/progress", headers=freelancer.auth)


def evaluate(http: httpx.Client, client: Account, milestone_id: str, state: Any) -> httpx.Response:
    return http.post(f"{API}/contracts/milestones/{milestone_id}/evaluate", json={"evaluatedState": state},
                     headers=client.auth)


def to_accepted(http: httpx.Client, client: Account, freelancer: Account, milestone_id: str) -> str:
    """OPEN → IN_PROGRESS → IN_REVIEW → ACCEPTED; the payment request id."""
    assert expect(progress(http, freelancer, milestone_id), 200)["status"] == "IN_PROGRESS"
    assert expect(progress(http, freelancer, milestone_id), 200)["status"] == "IN_REVIEW"
    answer = expect(evaluate(http, client, milestone_id, "ACCEPTED"), 200)
    has_fields(answer, MILESTONE_FIELDS + " paymentRequestId")
    assert answer["status"] == "ACCEPTED", answer
    return answer["paymentRequestId"]


def balance(http: httpx.Client, account: Account) -> float:
    body = has_fields(expect(http.get(f"{me(account)}/wallet", headers=account.auth), 200), "balance")
    is_money(body["balance"])
    return body["balance"]


def deposit(http: httpx.Client, account: Account, amount: Any, key: str | None = None) -> httpx.Response:
    headers = dict(account.auth, **({"Idempotency-Key": key} if key else {}))
    return http.post(f"{me(account)}/wallet/deposit", json={"amount": amount}, headers=headers)


def withdraw(http: httpx.Client, account: Account, amount: Any, key: str | None = None) -> httpx.Response:
    headers = dict(account.auth, **({"Idempotency-Key": key} if key else {}))
    return http.post(f"{me(account)}/wallet/withdraw", json={"amount": amount}, headers=headers)


def pay(http: httpx.Client, client: Account, request_id: str, key: str | None = None) -> httpx.Response:
    headers = dict(client.auth, **({"Idempotency-Key": key} if key else {}))
    return http.post(f"{API}/payments/requests/{request_id}/pay", headers=headers)


def milestone(http: httpx.Client, account: Account, milestone_id: str) -> dict[str, Any]:
    return expect(http.get(f"{API}/contracts/milestones/{milestone_id}", headers=account.auth), 200)


# --- whole scenarios -------------------------------------------------------------------------

def marketplace_flow(http: httpx.Client) -> None:
    """Client posts → freelancer proposes → accept → milestones → evaluate → pay → PAID → COMPLETED."""
    amounts = [120.5, 79.5]
    client, freelancer, contract, milestones = new_contract(http, amounts)
    has_fields(contract, CONTRACT_FIELDS)
    timestamps(contract, "createdAt")
    assert contract["status"] == "ACTIVE"
    assert (contract["clientId"], contract["freelancerId"]) == (client.id, freelancer.id)
    assert [m["id"] for m in milestones] == contract["milestoneIds"]
    assert [m["amount"] for m in milestones] == amounts
    for m in milestones:
        has_fields(m, MILESTONE_FIELDS)
        assert m["status"] == "OPEN" and m["contractId"] == contract["id"]
    assert expect(deposit(http, client, 250), 200)["balance"] == 250
    total_before = balance(http, client) + balance(http, freelancer)

    for m, amount in zip(milestones, amounts):
        request_id = to_accepted(http, client, freelancer, m["id"])
        request = expect(http.get(f"{API}/payments/requests/{request_id}", headers=freelancer.auth), 200)
        has_fields(request, REQUEST_FIELDS)
        timestamps(request, "createdAt", "updatedAt")
        assert (request["status"], request["milestoneId"], request["contractId"]) == ("PENDING", m["id"], contract["id"])
        is_money(request["amount"], amount)
        answer = has_fields(expect(pay(http, client, request_id), 200), "transactionId paymentRequestId status")
        assert (answer["paymentRequestId"], answer["status"]) == (request_id, "SUCCESS")
        paid = wait_until(lambda: milestone(http, freelancer, m["id"])["status"] == "PAID", timeout=10)
        assert paid, f"milestone {m['id']} not PAID 10 s after the payment"
        problem(pay(http, client, request_id), 409)           # already paid

    done = wait_until(lambda: expect(http.get(f"{API}/contracts/{contract['id']}", headers=client.auth),
                                     200)["status"] == "COMPLETED", timeout=10)
    assert done, "contract not COMPLETED after all its milestones were PAID"
    assert balance(http, client) == 50
    assert balance(http, freelancer) == 200
    assert balance(http, client) + balance(http, freelancer) == total_before   # money conserved


def search_paging(http: httpx.Client, client: Account, count: int = 7, page_limit: int = 3) -> None:
    word = "zq" + uuid.uuid4().hex[:10]
    ids = [post_job(http, client, title=f"Job {i} {word.upper()}", description="paging check")["id"]
           for i in range(count)]
    seen: list[str] = []
    state = None
    for _ in range(count + 2):
        params = {"query": word, "pageLimit": page_limit, **({"pagingState": state} if state else {})}
        page = has_fields(expect(http.get(f"{API}/jobs/search", params=params), 200), "jobs pagingState")
        assert isinstance(page["jobs"], list) and len(page["jobs"]) <= page_limit, page
        for job in page["jobs"]:
            assert SEARCH_ITEM_FIELDS <= job.keys(), job
        seen += [job["id"] for job in page["jobs"]]
        state = page["pagingState"]
        if state is None:
            break
    assert state is None, "pagingState never became null"
    assert seen == list(reversed(ids)), f"not all jobs once, newest first: {seen} vs {list(reversed(ids))}"


def idempotent_deposit(http: httpx.Client, account: Account) -> None:
    key = uuid.uuid4().hex
    first = expect(deposit(http, account, 10.25, key), 200)
    again = expect(deposit(http, account, 10.25, key), 200)
    assert first == again and first["balance"] == 10.25, (first, again)
    assert balance(http, account) == 10.25


def concurrent_withdrawals(http: httpx.Client) -> None:
    """8 racing withdrawals of 30 from 100: exactly 3 succeed, the balance never goes below zero."""
    account = register_freelancer(http)
    expect(deposit(http, account, 100), 200)
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: withdraw(http, account, 30).status_code, range(8)))
    assert statuses == [200] * 3 + [409] * 5, statuses
    assert balance(http, account) == 10


def races(http: httpx.Client, n: int = 6) -> None:
    """The 409 rules hold under concurrency: one PENDING proposal per freelancer and job, one
    account per email, one accepted proposal per job, one payment per request."""
    def race(calls: list[Any]) -> list[int]:
        with ThreadPoolExecutor(len(calls)) as pool:
            return sorted(r.status_code for r in pool.map(lambda call: call(), calls))

    client, freelancer, other = register_client(http), register_freelancer(http), register_freelancer(http)
    job = post_job(http, client)
    body = proposal_body([10])
    assert race([lambda: http.post(f"{API}/jobs/{job['id']}/proposals", json=body, headers=freelancer.auth)] * n) == \
        [201] + [409] * (n - 1)
    email = unique_email("race")
    register = {"email": email, "password": "race-pass-1", "clientName": "R"}
    assert race([lambda: http.post(f"{API}/users/clients/register", json=register)] * n) == [201] + [409] * (n - 1)
    mine = expect(http.get(f"{API}/jobs/{job['id']}/proposals", headers=freelancer.auth), 200)[0]
    theirs = propose(http, other, job["id"], [10])
    accepts = [lambda p=p: http.post(f"{API}/jobs/{job['id']}/proposals/{p}/accept", headers=client.auth)
               for p in (mine["id"], theirs["id"])]
    assert race(accepts) == [200, 409]
    contracts = expect(http.get(f"{API}/contracts/me", headers=client.auth), 200)
    assert len(contracts) == 1, contracts
    winner = freelancer if contracts[0]["freelancerId"] == freelancer.id else other
    mid = contracts[0]["milestoneIds"][0]
    request_id = to_accepted(http, client, winner, mid)
    expect(deposit(http, client, 100), 200)
    assert race([lambda: pay(http, client, request_id)] * n) == [200] + [409] * (n - 1)
    assert (balance(http, client), balance(http, winner)) == (90, 10)
