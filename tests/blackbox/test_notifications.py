"""Notifications WebSocket per docs/api.md: 401 before the upgrade, 426 for a plain GET, events delivered."""

from __future__ import annotations

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from ._harness import API, Account, Running, expect, problem, resign
from ._scenarios import deposit, new_contract, pay, to_accepted
from ._ws import next_event, proposal_events, ws_url


def test_plain_get_426(http: httpx.Client, client: Account) -> None:
    problem(http.get(f"{API}/notifications", headers=client.auth), 426)


@pytest.mark.parametrize("how", ["missing", "query-garbage", "header-garbage", "badly-signed"])
async def test_bad_token_refused_401_before_upgrade(system: Running, client: Account, how: str) -> None:
    url, headers = ws_url(system), None
    if how == "query-garbage":
        url = ws_url(system, "garbage")
    elif how == "header-garbage":
        headers = [(b"Authorization", b"Bearer garbage")]
    elif how == "badly-signed":
        url = ws_url(system, resign(client.token, key="another-signing-key-" + "z" * 16))
    with pytest.raises(ConnectionRejected) as rejected:
        with trio.fail_after(10):
            async with open_websocket_url(url, extra_headers=headers):
                pass
    assert rejected.value.status_code == 401


async def test_proposal_events_delivered(system: Running) -> None:
    await proposal_events(system)


async def test_milestone_payment_contract_events(system: Running) -> None:
    sync = httpx.Client(base_url=system.base_url, timeout=20)
    try:
        client, freelancer, contract, milestones = await trio.to_thread.run_sync(new_contract, sync, [15])
        cid, mid = contract["id"], milestones[0]["id"]
        async with open_websocket_url(ws_url(system, client.token)) as client_ws, \
                open_websocket_url(ws_url(system, freelancer.token)) as freelancer_ws:
            request_id = await trio.to_thread.run_sync(to_accepted, sync, client, freelancer, mid)
            for ws, type in ((client_ws, "milestone.in_review"), (freelancer_ws, "milestone.evaluated")):
                data = (await next_event(ws, type))["data"]
                assert (data["milestoneId"], data["contractId"]) == (mid, cid), data
            assert (await next_event(client_ws, "payment.requested"))["data"]["paymentRequestId"] == request_id
            await trio.to_thread.run_sync(lambda: expect(deposit(sync, client, 15), 200))
            await trio.to_thread.run_sync(lambda: expect(pay(sync, client, request_id), 200))
            assert (await next_event(freelancer_ws, "payment.paid"))["data"]["paymentRequestId"] == request_id
            for ws in (client_ws, freelancer_ws):
                assert (await next_event(ws, "contract.completed"))["data"]["contractId"] == cid
    finally:
        sync.close()



async def test_contract_terminated_to_both_parties(system: Running, admin: Account) -> None:
    sync = httpx.Client(base_url=system.base_url, timeout=20)
    try:
        client, freelancer, contract, _ = await trio.to_thread.run_sync(new_contract, sync, [15])
        async with open_websocket_url(ws_url(system, client.token)) as client_ws, \
                open_websocket_url(ws_url(system, freelancer.token)) as freelancer_ws:
            def terminate() -> None:
                t = expect(sync.post(f"{API}/contracts/{contract['id']}/terminations/request", json={"reason": "r"},
                                     headers=client.auth), 201)
                expect(sync.post(f"{API}/contracts/terminations/{t['id']}/handle", json={"chosenStatus": "ACCEPTED"},
                                 headers=admin.auth), 200)
            await trio.to_thread.run_sync(terminate)
            for ws in (client_ws, freelancer_ws):
                assert (await next_event(ws, "contract.terminated"))["data"]["contractId"] == contract["id"]
    finally:
        sync.close()
