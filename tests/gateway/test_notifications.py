"""WebSocket notifications over real HTTP: auth before the upgrade, per-user delivery."""

import json

import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from workup.cache import closed_account_key
from workup.transport.envelope import Event
from workup.transport import LocalTransport

from tests._prometheus import sample

from ._serve import make_app, served

PATH = "/api/v1/notifications"


def ws_url(base: str, query: str = "") -> str:
    return base.replace("http://", "ws://") + PATH + query


def event(type_: str, *recipients: str, **data: str) -> Event:
    return Event(type=type_, at="2026-01-01T00:00:00.000Z", recipients=list(recipients), data=data)


@pytest.fixture
async def system():
    transport = LocalTransport()
    app = make_app(transport)
    async with served(app) as (client, base):
        yield app, transport, client, base


async def test_events_reach_their_recipients_only(system):
    app, transport, _, base = system
    alice = app.gw.tokens.issue("alice", "CLIENT")
    bob = app.gw.tokens.issue("bob", "FREELANCER")
    with trio.fail_after(10):
        async with open_websocket_url(ws_url(base), extra_headers=[("Authorization", f"Bearer {alice}")]) as a, \
                open_websocket_url(ws_url(base, f"?token={bob}")) as b:
            await transport.publish_event(event("proposal.created", "alice", proposalId="p1", jobId="j1"))
            await transport.publish_event(event("proposal.accepted", "bob", proposalId="p1", jobId="j1"))
            await transport.publish_event(event("contract.completed", "alice", "bob", contractId="c1"))
            got_a = [json.loads(await a.get_message()) for _ in range(2)]
            got_b = [json.loads(await b.get_message()) for _ in range(2)]
    assert got_a == [
        {"type": "proposal.created", "at": "2026-01-01T00:00:00.000Z", "data": {"proposalId": "p1", "jobId": "j1"}},
        {"type": "contract.completed", "at": "2026-01-01T00:00:00.000Z", "data": {"contractId": "c1"}},
    ]
    assert [m["type"] for m in got_b] == ["proposal.accepted", "contract.completed"]


async def test_gauge_counts_open_sockets(system):
    app, _, client, base = system
    token = app.gw.tokens.issue("carol", "CLIENT")
    with trio.fail_after(10):
        async with open_websocket_url(ws_url(base, f"?token={token}")):
            text = (await client.get("/metrics")).text
            assert sample(text, "workup_websocket_connections") == 1


@pytest.mark.parametrize("query, headers", [
    ("", []),
    ("?token=junk", []),
    ("", [("Authorization", "Bearer junk")]),
    ("", [("Authorization", "Basic abc")]),
])
async def test_bad_or_missing_token_refused_before_upgrade(system, query, headers):
    _, _, _, base = system
    with trio.fail_after(10), pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(ws_url(base, query), extra_headers=headers):
            pass
    assert info.value.status_code == 401
    assert json.loads(info.value.body)["status"] == 401


async def test_closed_account_refused(system):
    app, _, _, base = system
    token = app.gw.tokens.issue("gone", "CLIENT")
    await app.gw.cache.set_flag(closed_account_key("gone"))
    with trio.fail_after(10), pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(ws_url(base, f"?token={token}")):
            pass
    assert info.value.status_code == 401


async def test_plain_get_is_426(system):
    app, _, client, _ = system
    r = await client.get(PATH, headers={"Authorization": f"Bearer {app.gw.tokens.issue('u', 'CLIENT')}"})
    assert r.status_code == 426 and r.headers["upgrade"] == "websocket"
    assert r.headers["content-type"] == "application/problem+json"
    r = await client.get(PATH)
    assert r.status_code == 426
    r = await client.get(PATH, headers={"Authorization": "Bearer junk"})
    assert r.status_code == 401


async def test_slow_reader_is_closed_not_silently_skipped(system):
    from workup.gateway._notification_hub import QUEUE_SIZE
    app, transport, _, base = system
    token = app.gw.tokens.issue("slow", "CLIENT")
    with trio.fail_after(20):
        async with open_websocket_url(ws_url(base, f"?token={token}")) as ws:
            for i in range(QUEUE_SIZE * 4):
                await transport.publish_event(event("payment.paid", "slow", paymentRequestId=str(i)))
            seen = []
            try:
                while True:
                    seen.append(json.loads(await ws.get_message())["data"]["paymentRequestId"])
            except Exception:
                pass
            # what arrived is a gap-free prefix, then the socket was closed (1013)
            assert seen == [str(i) for i in range(len(seen))]
            assert ws.closed is not None and ws.closed.code == 1013


async def test_client_messages_are_ignored_and_sockets_close_with_the_account(system):
    from workup.gateway import routing
    app, transport, client, base = system
    token = app.gw.tokens.issue("chatty", "CLIENT")
    with trio.fail_after(10):
        async with open_websocket_url(ws_url(base, f"?token={token}")) as ws:
            for i in range(50):   # more than quart's inbound queue holds
                await ws.send_message(f"hello {i}")
            await transport.publish_event(event("payment.paid", "chatty", paymentRequestId="r1"))
            assert json.loads(await ws.get_message())["data"] == {"paymentRequestId": "r1"}
            async with app.app_context():
                routing.account_closed("chatty")
            with pytest.raises(Exception):
                await ws.get_message()
            assert ws.closed is not None and ws.closed.code == 1008


async def test_the_event_stream_is_held_only_while_a_socket_wants_it(system):
    app, transport, _, base = system
    app.gw.hub.linger = 0.3
    await trio.sleep(0.2)
    assert transport.subscriber_count() == 0 and not app.gw.hub.ready.is_set()   # nobody listens
    token = app.gw.tokens.issue("dana", "CLIENT")
    with trio.fail_after(10):
        async with open_websocket_url(ws_url(base, f"?token={token}")) as ws:
            assert transport.subscriber_count() == 1   # live before the handshake completed
            await transport.publish_event(event("payment.paid", "dana", paymentRequestId="r1"))
            assert json.loads(await ws.get_message())["data"] == {"paymentRequestId": "r1"}
            await trio.sleep(0.6)   # longer than the linger: an open socket keeps the stream
            assert transport.subscriber_count() == 1
        while transport.subscriber_count():   # the last socket closed: gone after the linger
            await trio.sleep(0.05)
        assert not app.gw.hub.ready.is_set()
        async with open_websocket_url(ws_url(base, f"?token={token}")) as ws:   # and back on demand
            await transport.publish_event(event("payment.paid", "dana", paymentRequestId="r2"))
            assert json.loads(await ws.get_message())["data"] == {"paymentRequestId": "r2"}


async def test_a_socket_within_the_linger_reuses_the_live_stream(system):
    app, transport, _, base = system
    token = app.gw.tokens.issue("erin", "CLIENT")
    with trio.fail_after(10):
        async with open_websocket_url(ws_url(base, f"?token={token}")):
            pass
        assert transport.subscriber_count() == 1 and app.gw.hub.ready.is_set()   # linger: 30 s
        async with open_websocket_url(ws_url(base, f"?token={token}")) as ws:
            assert transport.subscriber_count() == 1
            await transport.publish_event(event("payment.paid", "erin", paymentRequestId="r3"))
            assert json.loads(await ws.get_message())["data"] == {"paymentRequestId": "r3"}
