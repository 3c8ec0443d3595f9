"""Contracts per docs/api.md: the whole marketplace flow, reads and access, milestone state machine,
terminations, completion, the printed summary."""

from __future__ import annotations

import httpx
import pytest

from ._harness import API, Account, expect, has_fields, problem, register_client, register_freelancer
from ._scenarios import (CONTRACT_FIELDS, MILESTONE_FIELDS, deposit, evaluate, marketplace_flow, milestone,
    new_contract, pay, progress, races, to_accepted)

C = f"{API}/contracts"
TERMINATION_FIELDS = "id contractId requesterId reason status"


def test_marketplace_flow(http: httpx.Client) -> None:
    marketplace_flow(http)


def test_races_keep_the_409_rules(http: httpx.Client) -> None:
    races(http)


def test_contract_reads_and_access(http: httpx.Client, admin: Account) -> None:
    client, freelancer, contract, milestones = new_contract(http, [10, 20, 30])
    cid = contract["id"]
    for viewer in (client, freelancer, admin):
        has_fields(expect(http.get(f"{C}/{cid}", headers=viewer.auth), 200), CONTRACT_FIELDS)
        listed = expect(http.get(f"{C}/{cid}/milestones", headers=viewer.auth), 200)
        assert [m["description"] for m in listed] == ["part 1", "part 2", "part 3"]     # proposal order
        one = has_fields(milestone(http, viewer, milestones[1]["id"]), MILESTONE_FIELDS)
        assert (one["amount"], one["dueDate"], one["status"]) == (20, "2027-02-15", "OPEN")
        expect(http.get(f"{C}/{cid}/terminations", headers=viewer.auth), 200)
        assert expect(http.get(f"{C}/{cid}/print", headers=viewer.auth), 200)
    for mine in (client, freelancer):
        assert [c["id"] for c in expect(http.get(f"{C}/me", headers=mine.auth), 200)] == [cid]
    stranger = register_client(http)
    assert expect(http.get(f"{C}/me", headers=stranger.auth), 200) == []
    assert isinstance(expect(http.get(f"{C}/me", headers=admin.auth), 200), list)
    for path in (f"{C}/{cid}", f"{C}/{cid}/milestones", f"{C}/milestones/{milestones[0]['id']}",
                 f"{C}/{cid}/terminations", f"{C}/{cid}/print"):
        problem(http.get(path, headers=stranger.auth), 403)
    problem(http.get(f"{C}/{client.id}", headers=client.auth), 404)
    problem(http.get(f"{C}/milestones/{cid}", headers=client.auth), 404)


def test_contracts_me_newest_first(http: httpx.Client) -> None:
    from ._scenarios import accept, post_job, propose
    c, f = register_client(http), register_freelancer(http)
    ids = []
    for _ in range(2):
        job = post_job(http, c)
        ids.append(accept(http, c, job["id"], propose(http, f, job["id"])["id"])["contractId"])
    assert [x["id"] for x in expect(http.get(f"{C}/me", headers=f.auth), 200)] == ids[::-1]


def test_milestone_state_machine(http: httpx.Client) -> None:
    client, freelancer, _, milestones = new_contract(http, [10, 20])
    mid = milestones[0]["id"]
    problem(evaluate(http, client, mid, "ACCEPTED"), 409)                  # OPEN cannot be evaluated
    problem(progress(http, register_freelancer(http), mid), 403)            # not the contract's freelancer
    assert expect(progress(http, freelancer, mid), 200)["status"] == "IN_PROGRESS"
    r = http.post(f"{C}/milestones/{mid}/progress", json={}, headers=freelancer.auth)
    assert has_fields(expect(r, 200), MILESTONE_FIELDS)["status"] == "IN_REVIEW"
    problem(progress(http, freelancer, mid), 409)
    problem(evaluate(http, client, mid, "PAID"), 400, fields=("evaluatedState",))
    problem(evaluate(http, client, mid, "OPEN"), 400, fields=("evaluatedState",))
    problem(http.post(f"{C}/milestones/{mid}/evaluate", json={}, headers=client.auth), 400, fields=("evaluatedState",))
    problem(evaluate(http, register_client(http), mid, "ACCEPTED"), 403)
    back = expect(evaluate(http, client, mid, "IN_PROGRESS"), 200)
    assert back["status"] == "IN_PROGRESS", back
    assert back.get("paymentRequestId") is None, f"a payment request id without acceptance: {back}"
    assert expect(progress(http, freelancer, mid), 200)["status"] == "IN_REVIEW"
    request_id = expect(evaluate(http, client, mid, "ACCEPTED"), 200)["paymentRequestId"]
    problem(evaluate(http, client, mid, "ACCEPTED"), 409)
    problem(progress(http, freelancer, mid), 409)
    request = expect(http.get(f"{API}/payments/requests/{request_id}", headers=client.auth), 200)
    assert (request["status"], request["amount"], request["clientId"], request["freelancerId"]) == (
        "PENDING", 10, client.id, freelancer.id)
    assert milestone(http, client, milestones[1]["id"])["status"] == "OPEN"


def test_print_plain_text(http: httpx.Client) -> None:
    client, _, contract, milestones = new_contract(http, [11.5, 22])
    r = http.get(f"{C}/{contract['id']}/print", headers=client.auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), (r.status_code, r.headers)
    text = r.text
    for piece in (contract["id"], "ACTIVE", contract["jobTitle"], contract["clientId"], contract["freelancerId"],
                  "part 1", "11.5", "2027-01-15", "part 2", "22", "2027-02-15", "OPEN"):
        assert piece in text, f"{piece!r} not in the printed contract:\n{text}"
    assert text.index("part 1") < text.index("part 2")
    for piece in (contract["id"], contract["jobTitle"], contract["clientId"], contract["freelancerId"]):
        assert text.index(piece) < text.index("part 1"), f"{piece!r} should come before the milestones:\n{text}"


# --- terminations -------------------------------------------------------------------------------------

def _request_termination(http: httpx.Client, account: Account, cid: str, reason: str = "no time") -> httpx.Response:
    return http.post(f"{C}/{cid}/terminations/request", json={"reason": reason}, headers=account.auth)


def _handle(http: httpx.Client, account: Account, tid: str, status: object) -> httpx.Response:
    return http.post(f"{C}/terminations/{tid}/handle", json={"chosenStatus": status}, headers=account.auth)


def test_termination_flow(http: httpx.Client, admin: Account) -> None:
    client, freelancer, contract, milestones = new_contract(http, [10, 20])
    cid = contract["id"]
    request_id = to_accepted(http, client, freelancer, milestones[0]["id"])   # a PENDING payment request
    expect(deposit(http, client, 100), 200)

    t = has_fields(expect(_request_termination(http, freelancer, cid), 201), TERMINATION_FIELDS)
    assert (t["contractId"], t["requesterId"], t["reason"], t["status"]) == (cid, freelancer.id, "no time", "PENDING")
    problem(_request_termination(http, freelancer, cid, "again"), 409)       # duplicate pending
    problem(_request_termination(http, register_client(http), cid), 403)
    problem(_request_termination(http, admin, cid), 403)                     # an admin is no party
    problem(http.post(f"{C}/{cid}/terminations/request", json={}, headers=client.auth), 400, fields=("reason",))
    t2 = expect(_request_termination(http, client, cid, "me too"), 201)
    pending = expect(http.get(f"{C}/{cid}/terminations", headers=admin.auth), 200)
    assert sorted(x["id"] for x in pending) == sorted([t["id"], t2["id"]])

    problem(_handle(http, client, t["id"], "ACCEPTED"), 403)
    problem(_handle(http, admin, t["id"], "MAYBE"), 400, fields=("chosenStatus",))
    handled = has_fields(expect(_handle(http, admin, t["id"], "ACCEPTED"), 200), TERMINATION_FIELDS)
    assert (handled["id"], handled["status"]) == (t["id"], "ACCEPTED")
    problem(_handle(http, admin, t["id"], "REJECTED"), 409)                  # not pending any more
    assert [x["id"] for x in expect(http.get(f"{C}/{cid}/terminations", headers=client.auth), 200)] == [t2["id"]]
    assert expect(http.get(f"{C}/{cid}", headers=client.auth), 200)["status"] == "TERMINATED"
    problem(_handle(http, admin, t2["id"], "ACCEPTED"), 409)                 # contract no longer ACTIVE
    request = expect(http.get(f"{API}/payments/requests/{request_id}", headers=client.auth), 200)
    assert request["status"] == "CANCELLED", request
    problem(pay(http, client, request_id), 409)
    problem(progress(http, freelancer, milestones[1]["id"]), 409)            # contract not ACTIVE
    problem(_request_termination(http, client, cid, "later"), 409)
    assert expect(deposit(http, client, 0.01), 200)["balance"] == 100.01    # nothing was debited


def test_termination_rejected_keeps_contract_active(http: httpx.Client, admin: Account) -> None:
    client, _, contract, _ = new_contract(http, [10])
    t = expect(_request_termination(http, client, contract["id"]), 201)
    assert expect(_handle(http, admin, t["id"], "REJECTED"), 200)["status"] == "REJECTED"
    assert expect(http.get(f"{C}/{contract['id']}", headers=client.auth), 200)["status"] == "ACTIVE"
    assert expect(http.get(f"{C}/{contract['id']}/terminations", headers=client.auth), 200) == []
    expect(_request_termination(http, client, contract["id"], "second try"), 201)


@pytest.mark.parametrize("who", ["client", "freelancer"])
def test_contract_parts_need_party_role(http: httpx.Client, who: str) -> None:
    client, freelancer, contract, milestones = new_contract(http, [10])
    mid = milestones[0]["id"]
    if who == "client":
        problem(progress(http, client, mid), 403)
    else:
        problem(evaluate(http, freelancer, mid, "ACCEPTED"), 403)


def test_termination_404s(http: httpx.Client, client: Account, admin: Account) -> None:
    problem(_request_termination(http, client, client.id), 404)              # a user id is no contract id
    problem(_handle(http, admin, client.id, "ACCEPTED"), 404)
