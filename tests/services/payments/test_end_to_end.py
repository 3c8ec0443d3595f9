"""The whole chain through the real gateway with the real users, jobs, contracts and payments
services (``workup.testing.running_system``): register → deposit → job → proposal → contract → milestone
accepted (payment request) → pay → milestone PAID → contract COMPLETED, with the notifications.
``distributed``: RabbitMQ, Redis, PostgreSQL, FerretDB and Cassandra; ``embedded``: the embedded defaults."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import trio

from workup.testing import running_system


@pytest.mark.parametrize("mode", ["embedded", "distributed"])
async def test_pay_completes_the_contract(mode):
    async with running_system(mode) as sys:
        async def post(path, body, auth, status=200):
            r = await sys.http.post(f"/api/v1{path}", json=body, headers=auth)
            assert r.status_code == status, (path, r.status_code, r.text)
            return json.loads(r.content, parse_float=Decimal) if r.content else None

        async def get(path, auth):
            r = await sys.http.get(f"/api/v1{path}", headers=auth)
            assert r.status_code == 200, (path, r.text)
            return json.loads(r.content, parse_float=Decimal)

        client, freelancer = await sys.register_client(), await sys.register_freelancer()
        ca, fa = client.auth, freelancer.auth
        assert await get("/payments/clients/me/wallet", ca) == {"balance": 0}
        assert await post("/payments/clients/me/wallet/deposit", {"amount": 500}, ca) == {"balance": Decimal("500.00")}

        job = await post("/jobs", {"title": "Logo", "description": "A logo"}, ca, status=201)
        proposal = await post(f"/jobs/{job['id']}/proposals", {
            "coverLetter": "me", "jobDuration": "LESS_THAN_A_MONTH",
            "milestones": [{"description": "draft", "amount": 120.5, "dueDate": "2030-01-01"},
                           {"description": "final", "amount": 79.5, "dueDate": "2030-02-01"}]}, fa, status=201)
        contract_id = (await post(f"/jobs/{job['id']}/proposals/{proposal['id']}/accept", {}, ca))["contractId"]
        milestone_ids = (await get(f"/contracts/{contract_id}", ca))["milestoneIds"]
        for mid in milestone_ids:
            for _ in range(2):
                await post(f"/contracts/milestones/{mid}/progress", {}, fa)
            evaluated = await post(f"/contracts/milestones/{mid}/evaluate", {"evaluatedState": "ACCEPTED"}, ca)
            request_id = evaluated["paymentRequestId"]
            request = await get(f"/payments/requests/{request_id}", fa)
            assert (request["milestoneId"], request["contractId"], request["status"]) == (mid, contract_id, "PENDING")
            assert (await post(f"/payments/requests/{request_id}/pay", None, ca))["status"] == "SUCCESS"
            await sys.wait_for_event("payment.paid", paymentRequestId=request_id)

        with trio.fail_after(15):
            while (await get(f"/contracts/{contract_id}", ca))["status"] != "COMPLETED":
                await trio.sleep(0.05)
        assert [(await get(f"/contracts/milestones/{mid}", fa))["status"] for mid in milestone_ids] == ["PAID", "PAID"]
        assert await get("/payments/clients/me/wallet", ca) == {"balance": Decimal("300.00")}
        assert await get("/payments/freelancers/me/wallet", fa) == {"balance": Decimal("200.00")}
        await sys.wait_for_event("contract.completed", contractId=contract_id)
        assert {tuple(e.recipients) for e in sys.events_of("payment.requested")} == {(client.id,)}
        assert {tuple(e.recipients) for e in sys.events_of("payment.paid")} == {(freelancer.id,)}
