"""The whole chain through the real gateway with the real users, jobs, contracts and payments
services (in-process transport; payments on the real PostgreSQL, the others embedded): register →
deposit → job → proposal → contract → milestone accepted (payment request) → pay → milestone PAID
→ contract COMPLETED, with the notifications."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import httpx
import trio

from workup.cache import open_cache
from workup.gateway import create_app, serve_app
from workup.settings import Settings
from workup.workers import LocalTransport, load_service

from ._harness import Watching, start

JWT_KEY = "payments-e2e-signing-key-" + "e" * 24


async def test_pay_completes_the_contract(pg_url, tmp_path):
    settings = Settings(data_dir=str(tmp_path), payments_postgres_url=pg_url)
    t = LocalTransport()
    watch = Watching()
    watch.t, watch.events = t, []
    async with trio.open_nursery() as n:
        await n.start(watch._collect)
        for name in ("users", "jobs", "contracts", "payments"):
            await start(n, load_service(name), settings, t)
        base = await n.start(serve_app, create_app(settings, t, open_cache(settings), jwt_keys=JWT_KEY))
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            async def post(path, body, auth=None, status=200):
                r = await http.post(f"/api/v1{path}", json=body, headers=auth or {})
                assert r.status_code == status, (path, r.status_code, r.text)
                return json.loads(r.content, parse_float=Decimal) if r.content else None

            async def get(path, auth):
                r = await http.get(f"/api/v1{path}", headers=auth)
                assert r.status_code == 200, (path, r.text)
                return json.loads(r.content, parse_float=Decimal)

            tag = uuid.uuid4().hex[:8]
            c = await post("/users/clients/register", {"email": f"c{tag}@example.com", "password": "password1",
                                                        "clientName": "Acme"}, status=201)
            f = await post("/users/freelancers/register", {"email": f"f{tag}@example.com", "password": "password1",
                                                            "fullName": "Fay"}, status=201)
            ca, fa = ({"Authorization": f"Bearer {x['authToken']}"} for x in (c, f))
            assert await get("/payments/clients/me/wallet", ca) == {"balance": 0}
            assert await post("/payments/clients/me/wallet/deposit", {"amount": 500}, ca) == {"balance": Decimal("500.00")}

            job = await post("/jobs", {"title": "Logo", "description": "A logo"}, ca, status=201)
            proposal = await post(f"/jobs/{job['id']}/proposals", {
                "coverLetter": "me", "jobDuration": "LESS_THAN_A_MONTH",
                "milestones": [{"description": "draft", "amount": 120.5, "dueDate": "2030-01-01"},
                               {"description": "final", "amount": 79.5, "dueDate": "2030-02-01"}]}, fa, status=201)
            accepted = await post(f"/jobs/{job['id']}/proposals/{proposal['id']}/accept", {}, ca)
            contract_id = accepted["contractId"]
            milestone_ids = (await get(f"/contracts/{contract_id}", ca))["milestoneIds"]
            for mid in milestone_ids:
                for _ in range(2):
                    await post(f"/contracts/milestones/{mid}/progress", {}, fa)
                evaluated = await post(f"/contracts/milestones/{mid}/evaluate", {"evaluatedState": "ACCEPTED"}, ca)
                request_id = evaluated["paymentRequestId"]
                request = await get(f"/payments/requests/{request_id}", fa)
                assert (request["milestoneId"], request["contractId"], request["status"]) == (mid, contract_id, "PENDING")
                paid = await post(f"/payments/requests/{request_id}/pay", None, ca)
                assert paid["status"] == "SUCCESS"

            async def completed() -> bool:
                return (await get(f"/contracts/{contract_id}", ca))["status"] == "COMPLETED"
            with trio.fail_after(15):
                while not await completed():
                    await trio.sleep(0.05)
            statuses = [(await get(f"/contracts/milestones/{mid}", fa))["status"] for mid in milestone_ids]
            assert statuses == ["PAID", "PAID"]
            assert await get("/payments/clients/me/wallet", ca) == {"balance": Decimal("300.00")}
            assert await get("/payments/freelancers/me/wallet", fa) == {"balance": Decimal("200.00")}
            await watch.wait_for(lambda: sum(e.type == "payment.paid" for e in watch.events) == 2
                                 and any(e.type == "contract.completed" for e in watch.events))
            assert {tuple(e.recipients) for e in watch.events if e.type == "payment.requested"} == {(c["userId"],)}
            assert {tuple(e.recipients) for e in watch.events if e.type == "payment.paid"} == {(f["userId"],)}
        n.cancel_scope.cancel()
