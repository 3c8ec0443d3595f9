"""End to end with every real service: users, jobs, contracts and payments behind the gateway,
embedded (in-process, SQLite) and distributed (RabbitMQ, Redis, Cassandra, PostgreSQL,
MongoDB wire). A contract is paid to COMPLETED through wallets, another is terminated and its
pending payment request cancelled."""

from __future__ import annotations

import pytest
import trio

from workup.testing import running_system

MILESTONES = [{"description": "design", "amount": 100.5, "dueDate": "2030-01-01"},
              {"description": "build", "amount": 200, "dueDate": "2030-02-01"}]


async def eventually(fetch, check, timeout: float = 15):
    with trio.fail_after(timeout):
        while True:
            value = await fetch()
            if check(value):
                return value
            await trio.sleep(0.05)


@pytest.mark.parametrize("mode", ["embedded", "distributed"])
async def test_paid_to_completion_and_terminated(mode):
    async with running_system(mode) as sys:
        http = sys.http
        client, fay, admin = await sys.register_client(), await sys.register_freelancer(), await sys.admin()
        r = await http.post("/api/v1/payments/clients/me/wallet/deposit", json={"amount": 1000}, headers=client.auth)
        assert r.status_code == 200, r.text

        async def contract() -> dict:
            job = (await http.post("/api/v1/jobs", json={"title": "E2E", "description": "work"}, headers=client.auth)).json()
            p = (await http.post(f"/api/v1/jobs/{job['id']}/proposals", headers=fay.auth, json={
                "coverLetter": "me", "jobDuration": "LESS_THAN_A_MONTH", "milestones": MILESTONES})).json()
            r = await http.post(f"/api/v1/jobs/{job['id']}/proposals/{p['id']}/accept", headers=client.auth)
            assert r.status_code == 200, r.text
            return (await http.get(f"/api/v1/contracts/{r.json()['contractId']}", headers=fay.auth)).json()

        async def accept_milestone(mid: str) -> str:
            for _ in range(2):
                assert (await http.post(f"/api/v1/contracts/milestones/{mid}/progress", headers=fay.auth)).status_code == 200
            r = await http.post(f"/api/v1/contracts/milestones/{mid}/evaluate", json={"evaluatedState": "ACCEPTED"},
                                headers=client.auth)
            assert r.status_code == 200, r.text
            return r.json()["paymentRequestId"]

        c = await contract()
        for mid in c["milestoneIds"]:
            rid = await accept_milestone(mid)
            req = (await http.get(f"/api/v1/payments/requests/{rid}", headers=client.auth)).json()
            assert (req["status"], req["milestoneId"], req["contractId"]) == ("PENDING", mid, c["id"])
            assert (await http.post(f"/api/v1/payments/requests/{rid}/pay", headers=client.auth)).status_code == 200
            await eventually(lambda: http.get(f"/api/v1/contracts/milestones/{mid}", headers=fay.auth),
                             lambda r: r.json()["status"] == "PAID")
        await eventually(lambda: http.get(f"/api/v1/contracts/{c['id']}", headers=client.auth),
                         lambda r: r.json()["status"] == "COMPLETED")
        await sys.wait_for_event("contract.completed", contractId=c["id"])
        wallet = await http.get("/api/v1/payments/freelancers/me/wallet", headers=fay.auth)
        assert wallet.json()["balance"] == 300.5
        assert (await http.get("/api/v1/payments/clients/me/wallet", headers=client.auth)).json()["balance"] == 699.5

        c2 = await contract()
        rid = await accept_milestone(c2["milestoneIds"][0])
        t = await http.post(f"/api/v1/contracts/{c2['id']}/terminations/request", json={"reason": "stop"}, headers=fay.auth)
        assert t.status_code == 201
        r = await http.post(f"/api/v1/contracts/terminations/{t.json()['id']}/handle", json={"chosenStatus": "ACCEPTED"},
                            headers=admin.auth)
        assert r.status_code == 200 and r.json()["status"] == "ACCEPTED"
        assert (await http.get(f"/api/v1/contracts/{c2['id']}", headers=client.auth)).json()["status"] == "TERMINATED"
        await eventually(lambda: http.get(f"/api/v1/payments/requests/{rid}", headers=client.auth),
                         lambda r: r.json()["status"] == "CANCELLED")
        assert (await http.post(f"/api/v1/payments/requests/{rid}/pay", headers=client.auth)).status_code == 409
