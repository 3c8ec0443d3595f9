"""Contract routes through the real gateway: reads, parties-only, the milestone and termination
state machines (every illegal transition is 409, a redelivered progress steps once), payment
requests, completion, print."""

from __future__ import annotations

import msgspec
import trio

from workup.transport.envelope import SERVICE_CALLER, Caller
from workup.messages.contracts import MarkMilestonePaid, ProgressMilestone
from tests.services.jobs._http import User
from tests.services.jobs._services import new_id

C = "/api/v1/contracts"


async def test_reads_and_parties_only(system):
    client, fay, c = await system.contract()
    http = system.http
    admin, stranger_c, stranger_f = User("ADMIN"), User("CLIENT"), User("FREELANCER")
    cid = c["id"]
    assert set(c) == {"id", "jobId", "jobTitle", "proposalId", "clientId", "freelancerId", "status",
                      "milestoneIds", "createdAt"}
    for path in (f"{C}/{cid}", f"{C}/{cid}/milestones", f"{C}/milestones/{c['milestoneIds'][0]}",
                 f"{C}/{cid}/terminations", f"{C}/{cid}/print"):
        for who in (client, fay, admin):
            assert (await http.get(path, headers=who.auth)).status_code == 200, path
        for who in (stranger_c, stranger_f):
            assert (await http.get(path, headers=who.auth)).status_code == 403, path
        assert (await http.get(path)).status_code == 401
    for path in (f"{C}/{new_id()}", f"{C}/{new_id()}/milestones", f"{C}/milestones/{new_id()}", f"{C}/{new_id()}/print",
                 f"{C}/{new_id()}/terminations"):
        assert (await http.get(path, headers=admin.auth)).status_code == 404, path
    assert (await http.get(f"{C}/bad-id", headers=admin.auth)).status_code == 400
    ms = (await http.get(f"{C}/{cid}/milestones", headers=client.auth)).json()
    assert [m["id"] for m in ms] == c["milestoneIds"]
    assert [(m["description"], m["amount"], m["dueDate"], m["status"]) for m in ms] == [
        ("design", 100.5, "2030-01-01", "OPEN"), ("build", 200, "2030-02-01", "OPEN")]
    assert set(ms[0]) == {"id", "contractId", "description", "amount", "dueDate", "status"}
    assert (await http.get(f"{C}/milestones/{ms[1]['id']}", headers=fay.auth)).json() == ms[1]
    assert [x["id"] for x in (await http.get(f"{C}/me", headers=fay.auth)).json()] == [cid]
    assert (await http.get(f"{C}/me", headers=stranger_f.auth)).json() == []
    assert (await http.get(f"{C}/me", headers=admin.auth)).json() == []
    r = await http.get(f"{C}/{cid}/print", headers=client.auth)
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert cid in text and "ACTIVE" in text and "Python developer" in text and client.id in text and fay.id in text
    assert text.index("design") < text.index("build") and "100.50" in text and "2030-02-01" in text


async def test_milestone_state_machine(system):
    client, fay, c = await system.contract()
    http = system.http
    m1, m2 = c["milestoneIds"]

    async def progress(mid: str, who: User = fay, body: object = None) -> int:
        kw = {"json": body} if body is not None else {}
        return (await http.post(f"{C}/milestones/{mid}/progress", headers=who.auth, **kw)).status_code

    async def evaluate(mid: str, state: str, who: User = client) -> tuple[int, dict]:
        r = await http.post(f"{C}/milestones/{mid}/evaluate", json={"evaluatedState": state}, headers=who.auth)
        return r.status_code, r.json()

    assert await progress(m1, client) == 403 and await progress(m1, User("FREELANCER")) == 403
    assert await progress(new_id()) == 404 and (await evaluate(new_id(), "ACCEPTED"))[0] == 404
    assert await progress("nope") == 400
    assert (await evaluate(m1, "ACCEPTED"))[0] == 409            # OPEN cannot be evaluated
    assert await progress(m1, body={}) == 200                    # OPEN → IN_PROGRESS
    assert (await evaluate(m1, "IN_PROGRESS"))[0] == 409         # not IN_REVIEW yet
    assert await progress(m1, body={"x": 1}) == 400
    assert await progress(m1) == 200                             # IN_PROGRESS → IN_REVIEW
    assert await progress(m1) == 409                             # IN_REVIEW cannot progress
    assert (await evaluate(m1, "ACCEPTED", fay))[0] == 403
    assert (await evaluate(m1, "ACCEPTED", User("CLIENT")))[0] == 403
    for bad in ("PAID", "OPEN", "IN_REVIEW", "accepted"):
        assert (await evaluate(m1, bad))[0] == 400
    status, back = await evaluate(m1, "IN_PROGRESS")             # back to work
    assert status == 200 and back["status"] == "IN_PROGRESS" and back.get("paymentRequestId") is None
    assert await progress(m1) == 200
    status, acc = await evaluate(m1, "ACCEPTED")
    assert status == 200 and acc["status"] == "ACCEPTED"
    assert acc["paymentRequestId"] == system.payments.ids[m1]
    req = system.payments.requests[m1]
    assert (req.contract_id, req.client_id, req.freelancer_id, str(req.amount)) == (c["id"], client.id, fay.id, "100.5")
    assert await progress(m1) == 409 and (await evaluate(m1, "ACCEPTED"))[0] == 409 and (await evaluate(m1, "IN_PROGRESS"))[0] == 409
    got = (await http.get(f"{C}/milestones/{m1}", headers=client.auth)).json()
    assert got["status"] == "ACCEPTED"                           # the cache followed every write
    # payments marks it PAID (idempotently); the contract completes with its last milestone
    paid = MarkMilestonePaid(milestone_id=m1, payment_request_id=acc["paymentRequestId"])
    for _ in range(2):
        await system.services.ok("contracts.MarkMilestonePaid", paid, SERVICE_CALLER)
    assert await progress(m1) == 409 and (await evaluate(m1, "ACCEPTED"))[0] == 409
    status, _ = await system.services.answer("contracts.MarkMilestonePaid",
                                             MarkMilestonePaid(milestone_id=m2, payment_request_id="x"), SERVICE_CALLER)
    assert status == 409                                         # OPEN cannot be paid
    await progress(m2), await progress(m2)
    _, acc2 = await evaluate(m2, "ACCEPTED")
    assert (await http.get(f"{C}/{c['id']}", headers=fay.auth)).json()["status"] == "ACTIVE"
    await system.services.ok("contracts.MarkMilestonePaid",
                             MarkMilestonePaid(milestone_id=m2, payment_request_id=acc2["paymentRequestId"]), SERVICE_CALLER)
    assert (await http.get(f"{C}/{c['id']}", headers=fay.auth)).json()["status"] == "COMPLETED"
    assert [m["status"] for m in (await http.get(f"{C}/{c['id']}/milestones", headers=fay.auth)).json()] == ["PAID", "PAID"]
    r = await http.post(f"{C}/{c['id']}/terminations/request", json={"reason": "late"}, headers=client.auth)
    assert r.status_code == 409                                  # not ACTIVE any more
    await trio.sleep(0.05)
    types = [(e.type, e.recipients) for e in system.services.events if e.data.get("contractId") == c["id"]]
    assert ("milestone.in_review", [client.id]) in types and ("milestone.evaluated", [fay.id]) in types
    assert types[-1] == ("contract.completed", [client.id, fay.id])
    assert msgspec.json.decode(msgspec.json.encode(system.services.events[-1].data)) == {"contractId": c["id"]}


async def test_terminations(system):
    client, fay, c = await system.contract()
    http = system.http
    admin, cid = User("ADMIN"), c["id"]
    url = f"{C}/{cid}/terminations/request"
    assert (await http.post(url, json={"reason": "x"}, headers=admin.auth)).status_code == 403
    assert (await http.post(url, json={"reason": "x"}, headers=User("CLIENT").auth)).status_code == 403
    assert (await http.post(url, json={}, headers=client.auth)).status_code == 400
    assert (await http.post(f"{C}/{new_id()}/terminations/request", json={"reason": "x"}, headers=client.auth)).status_code == 404
    r = await http.post(url, json={"reason": "too slow"}, headers=client.auth)
    assert r.status_code == 201
    t1 = r.json()
    assert t1 == {"id": t1["id"], "contractId": cid, "requesterId": client.id, "reason": "too slow", "status": "PENDING"}
    assert (await http.post(url, json={"reason": "again"}, headers=client.auth)).status_code == 409
    t2 = (await http.post(url, json={"reason": "fine by me"}, headers=fay.auth)).json()
    pending = (await http.get(f"{C}/{cid}/terminations", headers=admin.auth)).json()
    assert [t["id"] for t in pending] == [t1["id"], t2["id"]]
    handle = f"{C}/terminations/{t1['id']}/handle"
    assert (await http.post(handle, json={"chosenStatus": "ACCEPTED"}, headers=client.auth)).status_code == 403
    assert (await http.post(handle, json={"chosenStatus": "PENDING"}, headers=admin.auth)).status_code == 400
    assert (await http.post(f"{C}/terminations/{new_id()}/handle", json={"chosenStatus": "REJECTED"},
                            headers=admin.auth)).status_code == 404
    r = await http.post(handle, json={"chosenStatus": "REJECTED"}, headers=admin.auth)
    assert r.status_code == 200 and r.json()["status"] == "REJECTED"
    assert (await http.post(handle, json={"chosenStatus": "ACCEPTED"}, headers=admin.auth)).status_code == 409
    assert [t["id"] for t in (await http.get(f"{C}/{cid}/terminations", headers=fay.auth)).json()] == [t2["id"]]
    t3 = (await http.post(url, json={"reason": "now really"}, headers=client.auth)).json()   # may ask again
    r = await http.post(f"{C}/terminations/{t2['id']}/handle", json={"chosenStatus": "ACCEPTED"}, headers=admin.auth)
    assert r.status_code == 200 and r.json()["status"] == "ACCEPTED"
    assert (await http.get(f"{C}/{cid}", headers=client.auth)).json()["status"] == "TERMINATED"
    assert system.payments.cancelled == [cid]
    r = await http.post(f"{C}/terminations/{t3['id']}/handle", json={"chosenStatus": "ACCEPTED"}, headers=admin.auth)
    assert r.status_code == 409                                 # contract no longer ACTIVE
    assert (await http.post(url, json={"reason": "x"}, headers=fay.auth)).status_code == 409
    r = await http.post(f"{C}/milestones/{c['milestoneIds'][0]}/progress", headers=fay.auth)
    assert r.status_code == 409
    await trio.sleep(0.05)
    assert [e.recipients for e in system.services.events_of("contract.terminated")] == [[client.id, fay.id]]


async def test_racing_progress_and_duplicate_proposals(system):
    """Conditional writes under concurrency: racing progress calls move a milestone one step per
    success and never skip; racing proposals of one freelancer on one job admit exactly one."""
    client, fay, c = await system.contract()
    mid = c["milestoneIds"][0]
    statuses: list[tuple[int, str | None]] = []

    async def progress() -> None:
        r = await system.http.post(f"{C}/milestones/{mid}/progress", headers=fay.auth)
        statuses.append((r.status_code, r.json().get("status")))
    async with trio.open_nursery() as n:
        for _ in range(5):
            n.start_soon(progress)
    wins = sorted(s for code, s in statuses if code == 200)
    assert all(code in (200, 409) for code, _ in statuses) and wins in (["IN_PROGRESS"], ["IN_PROGRESS", "IN_REVIEW"])
    final = (await system.http.get(f"{C}/milestones/{mid}", headers=fay.auth)).json()["status"]
    assert final == wins[-1]

    job = await system.job(client)
    sam = User("FREELANCER")
    body = {"coverLetter": "x", "jobDuration": "LESS_THAN_A_MONTH",
            "milestones": [{"description": "m", "amount": 1, "dueDate": "2030-01-01"}]}
    codes: list[int] = []

    async def propose() -> None:
        r = await system.http.post(f"/api/v1/jobs/{job['id']}/proposals", json=body, headers=sam.auth)
        codes.append(r.status_code)
    async with trio.open_nursery() as n:
        for _ in range(4):
            n.start_soon(propose)
    assert sorted(codes) == [201, 409, 409, 409]
    assert len((await system.http.get(f"/api/v1/jobs/{job['id']}/proposals", headers=client.auth)).json()) == 1


async def test_a_redelivered_progress_moves_the_milestone_once(system):
    """The same ProgressMilestone twice with one request id (what the broker redelivers after a
    worker died before its ack): one step, and the same answer; a new request steps on."""
    _, fay, c = await system.contract()
    m1 = c["milestoneIds"][0]
    freelancer = Caller(fay.id, "FREELANCER")
    rid = new_id()

    async def progress(request_id: str) -> tuple[int, dict]:
        reply = await system.services.call("contracts.ProgressMilestone", ProgressMilestone(milestone_id=m1),
                                           freelancer, request_id=request_id)
        return reply.status, msgspec.json.decode(reply.body)

    first = await progress(rid)
    assert first[0] == 200 and first[1]["status"] == "IN_PROGRESS"
    assert await progress(rid) == first
    got = (await system.http.get(f"{C}/milestones/{m1}", headers=fay.auth)).json()
    assert got["status"] == "IN_PROGRESS"
    status, body = await progress(new_id())
    assert status == 200 and body["status"] == "IN_REVIEW"


async def test_the_last_two_milestones_paid_at_once_complete_the_contract(system):
    """MarkMilestonePaid trusts a sibling read PAID before its own payment (PAID is final) and
    reads the others again after it: two last payments at once still complete the contract."""
    client, fay, c = await system.contract()
    http = system.http
    accepted = {}
    for mid in c["milestoneIds"]:
        for _ in range(2):
            assert (await http.post(f"{C}/milestones/{mid}/progress", headers=fay.auth)).status_code == 200
        r = await http.post(f"{C}/milestones/{mid}/evaluate", json={"evaluatedState": "ACCEPTED"}, headers=client.auth)
        accepted[mid] = r.json()["paymentRequestId"]
    async with trio.open_nursery() as n:
        for mid, request_id in accepted.items():
            n.start_soon(system.services.ok, "contracts.MarkMilestonePaid",
                         MarkMilestonePaid(milestone_id=mid, payment_request_id=request_id), SERVICE_CALLER)
    assert (await http.get(f"{C}/{c['id']}", headers=fay.auth)).json()["status"] == "COMPLETED"
    assert [m["status"] for m in (await http.get(f"{C}/{c['id']}/milestones", headers=fay.auth)).json()] == ["PAID", "PAID"]
