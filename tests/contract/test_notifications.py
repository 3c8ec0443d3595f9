"""Notifications WebSocket per API.md: 401 before the upgrade, 426 for a plain GET, events delivered."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, WebSocketConnection, open_websocket_url

from ._harness import API, Account, Running, bearer, expect, problem, register_client, register_freelancer, resign, timestamps
from ._scenarios import deposit, new_contract, pay, post_job, proposal_body, to_accepted

def _ws_url(system: Running, token: str | None = None) -> str:
    url = system.base_url.replace("http://", "ws://") + f"{API}/notifications"
    return url + (f"?token={token}" if token else "")


async def _next_event(ws: WebSocketConnection, type: str, timeout: float = 10) -> dict[str, Any]:
    seen = []
    with trio.move_on_after(timeout):
        while True:
            event = json.loads(await ws.get_message())
            seen.append(event)
            if event.get("type") == type:
                assert {"type", "at", "data"} <= event.keys(), event
                timestamps(event, "at")
                return event
    raise AssertionError(f"no {type} event within {timeout}s; got {seen}")


def test_plain_get_426(http: httpx.Client, client: Account) -> None:
    problem(http.get(f"{API}/notifications", headers=client.auth), 426)


@pytest.mark.parametrize("how", ["missing", "query-garbage", "header-garbage", "badly-signed"])
async def test_bad_token_refused_401_before_upgrade(system: Running, client: Account, how: str) -> None:
    url, headers = _ws_url(system), None
    if how == "query-garbage":
        url = _ws_url(system, "garbage")
    elif how == "header-garbage":
        headers = [(b"Authorization", b"Bearer garbage")]
    elif how == "badly-signed":
        url = _ws_url(system, resign(client.token, key="another-signing-key-" + "z" * 16))
    with pytest.raises(ConnectionRejected) as rejected:
        with trio.fail_after(10):
            async with open_websocket_url(url, extra_headers=headers):
                pass
    assert rejected.value.status_code == 401


async def test_proposal_events_delivered(system: Running) -> None:
    async with httpx.AsyncClient(base_url=system.base_url, timeout=20) as http:
        sync = httpx.Client(base_url=system.base_url, timeout=20)
        try:
            client, f1, f2 = register_client(sync), register_freelancer(sync), register_freelancer(sync)
            job = post_job(sync, client)
        finally:
            sync.close()
        header = [(b"Authorization", f"Bearer {f1.token}".encode())]
        async with open_websocket_url(_ws_url(system, client.token)) as owner_ws, \
                open_websocket_url(_ws_url(system), extra_headers=header) as f1_ws, \
                open_websocket_url(_ws_url(system, f2.token)) as f2_ws:
            p1 = expect(await http.post(f"{API}/jobs/{job['id']}/proposals", json=proposal_body([10]),
                                        headers=f1.auth), 201)
            created = await _next_event(owner_ws, "proposal.created")
            assert created["data"] == {**created["data"], "proposalId": p1["id"], "jobId": job["id"]}
            p2 = expect(await http.post(f"{API}/jobs/{job['id']}/proposals", json=proposal_body([10]),
                                        headers=f2.auth), 201)
            expect(await http.post(f"{API}/jobs/{job['id']}/proposals/{p1['id']}/accept",
                                   headers=bearer(client.token)), 200)
            accepted = await _next_event(f1_ws, "proposal.accepted")
            assert (accepted["data"]["proposalId"], accepted["data"]["jobId"]) == (p1["id"], job["id"])
            rejected = await _next_event(f2_ws, "proposal.rejected")
            assert (rejected["data"]["proposalId"], rejected["data"]["jobId"]) == (p2["id"], job["id"])


async def test_milestone_payment_contract_events(system: Running) -> None:
    sync = httpx.Client(base_url=system.base_url, timeout=20)
    try:
        client, freelancer, contract, milestones = await trio.to_thread.run_sync(new_contract, sync, [15])
        cid, mid = contract["id"], milestones[0]["id"]
        async with open_websocket_url(_ws_url(system, client.token)) as client_ws, \
                open_websocket_url(_ws_url(system, freelancer.token)) as freelancer_ws:
            request_id = await trio.to_thread.run_sync(to_accepted, sync, client, freelancer, mid)
            for ws, type in ((client_ws, "milestone.in_review"), (freelancer_ws, "milestone.evaluated")):
                data = (await _next_event(ws, type))["data"]
                assert (data["milestoneId"], data["contractId"]) == (mid, cid), data
            assert (await _next_event(client_ws, "payment.requested"))["data"]["paymentRequestId"] == request_id
            await trio.to_thread.run_sync(lambda: expect(deposit(sync, client, 15), 200))
            await trio.to_thread.run_sync(lambda: expect(pay(sync, client, request_id), 200))
            assert (await _next_event(freelancer_ws, "payment.paid"))["data"]["paymentRequestId"] == request_id
            for ws in (client_ws, freelancer_ws):
                assert (await _next_event(ws, "contract.completed"))["data"]["contractId"] == cid
    finally:
        sync.close()



async def test_contract_terminated_to_both_parties(system: Running, admin: Account) -> None:
    sync = httpx.Client(base_url=system.base_url, timeout=20)
    try:
        client, freelancer, contract, _ = await trio.to_thread.run_sync(new_contract, sync, [15])
        async with open_websocket_url(_ws_url(system, client.token)) as client_ws, \
                open_websocket_url(_ws_url(system, freelancer.token)) as freelancer_ws:
            def terminate() -> None:
                t = expect(sync.post(f"{API}/contracts/{contract['id']}/terminations/request", json={"reason": "r"},
                                     headers=client.auth), 201)
                expect(sync.post(f"{API}/contracts/terminations/{t['id']}/handle", json={"chosenStatus": "ACCEPTED"},
                                 headers=admin.auth), 200)
            await trio.to_thread.run_sync(terminate)
            for ws in (client_ws, freelancer_ws):
                assert (await _next_event(ws, "contract.terminated"))["data"]["contractId"] == contract["id"]
    finally:
        sync.close()
