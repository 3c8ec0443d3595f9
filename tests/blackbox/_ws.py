"""WebSocket helpers and the proposal-events scenario (embedded and distributed)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from ._harness import API, Running, bearer, expect, register_client, register_freelancer, timestamps
from ._scenarios import post_job, proposal_body


def ws_url(system: Running, token: str | None = None) -> str:
    url = system.base_url.replace("http://", "ws://") + f"{API}/notifications"
    return url + (f"?token={token}" if token else "")


async def next_event(ws: WebSocketConnection, type: str, timeout: float = 10) -> dict[str, Any]:
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


async def proposal_events(system: Running) -> None:
    """proposal.created to the job owner, .accepted and .rejected to the freelancers."""
    async with httpx.AsyncClient(base_url=system.base_url, timeout=20) as http:
        sync = httpx.Client(base_url=system.base_url, timeout=20)
        try:
            client, f1, f2 = register_client(sync), register_freelancer(sync), register_freelancer(sync)
            job = post_job(sync, client)
        finally:
            sync.close()
        header = [(b"Authorization", f"Bearer {f1.token}".encode())]
        async with open_websocket_url(ws_url(system, client.token)) as owner_ws, \
                open_websocket_url(ws_url(system), extra_headers=header) as f1_ws, \
                open_websocket_url(ws_url(system, f2.token)) as f2_ws:
            p1 = expect(await http.post(f"{API}/jobs/{job['id']}/proposals", json=proposal_body([10]),
                                        headers=f1.auth), 201)
            created = await next_event(owner_ws, "proposal.created")
            assert created["data"] == {**created["data"], "proposalId": p1["id"], "jobId": job["id"]}
            p2 = expect(await http.post(f"{API}/jobs/{job['id']}/proposals", json=proposal_body([10]),
                                        headers=f2.auth), 201)
            expect(await http.post(f"{API}/jobs/{job['id']}/proposals/{p1['id']}/accept",
                                   headers=bearer(client.token)), 200)
            accepted = await next_event(f1_ws, "proposal.accepted")
            assert (accepted["data"]["proposalId"], accepted["data"]["jobId"]) == (p1["id"], job["id"])
            rejected = await next_event(f2_ws, "proposal.rejected")
            assert (rejected["data"]["proposalId"], rejected["data"]["jobId"]) == (p2["id"], job["id"])
