"""The runtime over the in-process transport: dispatch, problems, deadlines, events, control."""

from __future__ import annotations

import logging
import time

import msgspec
import pytest
import trio

from workup.transport.envelope import Caller, reply_body
from workup.settings import Settings
from workup.transport import DeadlineExceeded, NoResponder
from workup.transport import LocalTransport
from workup.runtime import Service, load_service, serve_service
from workup.runtime.control import ControlReply, control_key, sign
from workup.services.echo import Burn, Echo, Fail, Notify, Relay, Sleep

CLIENT = Caller("u1", "CLIENT")
SECRET = "test-control-secret"


async def start(nursery, transport, *, concurrency=8, service=None, grace=5.0):
    return await nursery.start(lambda task_status: serve_service(
        service or load_service("echo"), Settings(), transport, concurrency=concurrency,
        grace=grace, control_secret=SECRET, task_status=task_status))


async def test_echo_round_trip_and_problems(caplog):
    t = LocalTransport()
    async with trio.open_nursery() as n:
        await start(n, t)
        reply = await t.call("echo.Echo", Echo("hi", 3), caller=CLIENT, timeout=5)
        assert (reply.status, reply_body(reply)) == (200, {"text": "hi", "n": 3})

        unknown = await t.call("echo.Nope", Echo("x"), caller=CLIENT, timeout=5)
        assert unknown.status == 501

        bad = await t.call("echo.Echo", Burn(1), caller=CLIENT, timeout=5)  # wrong shape
        assert bad.status == 400 and b"text" in bad.body

        problem = await t.call("echo.Fail", Fail("problem"), caller=CLIENT, timeout=5)
        assert problem.status == 409
        assert msgspec.json.decode(problem.body)["detail"] == "asked to fail"

        with caplog.at_level(logging.ERROR, logger="workup.runtime"):
            crash = await t.call("echo.Fail", Fail("crash"), caller=CLIENT, timeout=5, request_id="rid-42")
        assert crash.status == 500
        assert b"rid-42" in crash.body and b"secret internal detail" not in crash.body
        assert "rid-42" in caplog.text and "secret internal detail" in caplog.text
        n.cancel_scope.cancel()


async def test_no_responder_and_deadlines():
    t = LocalTransport()
    with pytest.raises(NoResponder):
        await t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=1)
    async with trio.open_nursery() as n:
        inst = await start(n, t, concurrency=1)
        with pytest.raises(DeadlineExceeded):
            await t.call("echo.Sleep", Sleep(0.3), caller=CLIENT, timeout=0.05)
        # the only worker is busy with the Sleep: this one expires in the queue and is dropped
        with pytest.raises(DeadlineExceeded):
            await t.call("echo.Echo", Echo("late"), caller=CLIENT, timeout=0.05)
        await trio.sleep(0.4)
        assert inst.expired == 1
        reply = await t.call("echo.Echo", Echo("ok"), caller=CLIENT, timeout=2)
        assert reply.status == 200
        n.cancel_scope.cancel()


async def test_concurrency_is_bounded():
    t = LocalTransport()
    async with trio.open_nursery() as n:
        await start(n, t, concurrency=2)
        started = time.monotonic()
        async with trio.open_nursery() as calls:
            for _ in range(6):
                calls.start_soon(lambda: t.call("echo.Sleep", Sleep(0.1), caller=CLIENT, timeout=5))
        elapsed = time.monotonic() - started
        assert 0.29 < elapsed < 1.0
        n.cancel_scope.cancel()


async def test_service_calls_and_events():
    t = LocalTransport()
    async with trio.open_nursery() as n:
        await start(n, t)
        body = reply_body(await t.call("echo.Relay", Relay(), caller=CLIENT, timeout=5))
        assert body["role"] == "SERVICE" and body["userId"] is None
        events = t.subscribe()
        got = []

        async def collect():
            async for e in events:
                got.append(e)
                return
        n.start_soon(collect)
        await trio.sleep(0)
        reply = await t.call("echo.Notify", Notify("thing.done", ["u2"]), caller=CLIENT, timeout=5)
        assert reply.status == 202 and reply.body == b""
        with trio.fail_after(2):
            while not got:
                await trio.sleep(0.01)
        assert got[0].type == "thing.done" and got[0].recipients == ["u2"] and got[0].data == {"by": "u1"}
        n.cancel_scope.cancel()


async def test_background_task_runs_and_stops_on_freeze():
    svc: Service[None] = Service("bg")
    ticks = []

    @svc.background_task
    async def ticker(rt):
        while True:
            ticks.append(rt.deps)
            await trio.sleep(0.01)

    t = LocalTransport()
    async with trio.open_nursery() as n:
        inst = await start(n, t, service=svc)
        await trio.sleep(0.05)
        assert ticks
        await control(t, "bg", "freeze", expect=1)
        count = len(ticks)
        await trio.sleep(0.05)
        assert len(ticks) == count and inst.frozen
        n.cancel_scope.cancel()


async def control(t, service, command, *args, key=SECRET, expect=None, source=None):
    payload = sign(control_key(key), service, command, args, source=source)
    replies = await t.broadcast_control(service, payload, timeout=2, expect=expect)
    return [msgspec.json.decode(r, type=ControlReply) for r in replies]


HOT = '''
from workup.services.echo import Echo

async def handler(ctx, req: Echo):
    return {"text": req.text.upper(), "hot": True}
'''


async def test_control_on_two_instances():
    t = LocalTransport()
    async with trio.open_nursery() as n:
        a = await start(n, t)
        b = await start(n, t)
        replies = await control(t, "echo", "status", expect=2)
        assert len(replies) == 2 and all(r.ok and r.status.max_threads == 8 for r in replies)

        replies = await control(t, "echo", "set-max-threads", "3", expect=2)
        assert all(r.ok for r in replies) and a.max_threads == b.max_threads == 3
        assert a.rt.deps.limiter.total_tokens == 3  # the deps' driver limiter follows
        replies = await control(t, "echo", "set-max-db-connections", "5", expect=2)
        assert [r.status.db_pool_size for r in replies] == [5, 5]

        await control(t, "echo", "delete-command", "Echo", expect=2)
        assert (await t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=2)).status == 503
        await control(t, "echo", "add-command", "echo.Echo", expect=2)
        assert (await t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=2)).status == 200

        replies = await control(t, "echo", "update-command", "Echo", source=HOT, expect=2)
        assert all(r.ok for r in replies), replies
        assert all(r.status.versions["echo.Echo"].startswith("v2:") for r in replies)
        body = reply_body(await t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=2))
        assert body == {"text": "X", "hot": True}

        bad = HOT.replace("req: Echo", "req: int")
        replies = await control(t, "echo", "update-command", "Echo", source=bad, expect=2)
        assert not any(r.ok for r in replies) and "old handler stays" in replies[0].detail
        broken = "def handler(:\n"
        replies = await control(t, "echo", "update-command", "Echo", source=broken, expect=2)
        assert not any(r.ok for r in replies)
        assert reply_body(await t.call("echo.Echo", Echo("y"), caller=CLIENT, timeout=2))["hot"]

        replies = await control(t, "echo", "set-logging-level", "debug", expect=2)
        assert all(r.status.log_level == "DEBUG" for r in replies)
        logging.getLogger("workup").setLevel(logging.NOTSET)

        forged = await control(t, "echo", "set-max-threads", "50", key="wrong", expect=2)
        assert all(not r.ok and "refused" in r.detail for r in forged)
        assert a.max_threads == b.max_threads == 3

        replies = await control(t, "echo", "set-max-threads", "0", expect=2)
        assert not any(r.ok for r in replies) and a.max_threads == 3

        replies = await control(t, "echo", "freeze", expect=2)
        assert all(r.ok and r.status.frozen for r in replies)
        assert t.consumer_count("echo") == 0
        with pytest.raises(NoResponder):
            await t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=1)
        replies = await control(t, "echo", "start", expect=2)
        assert all(r.ok and not r.status.frozen for r in replies)
        assert (await t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=2)).status == 200
        n.cancel_scope.cancel()


async def test_replayed_control_message_is_refused():
    t = LocalTransport()
    async with trio.open_nursery() as n:
        inst = await start(n, t)
        payload = sign(control_key(SECRET), "echo", "set-max-threads", ["4"])
        first = await t.broadcast_control("echo", payload, timeout=2, expect=1)
        assert msgspec.json.decode(first[0], type=ControlReply).ok and inst.max_threads == 4
        await control(t, "echo", "set-max-threads", "6", expect=1)
        again = await t.broadcast_control("echo", payload, timeout=2, expect=1)
        assert "replayed" in msgspec.json.decode(again[0], type=ControlReply).detail
        assert inst.max_threads == 6
        stale = sign(control_key(SECRET), "echo", "freeze", now=time.time() - 100)
        reply = msgspec.json.decode((await t.broadcast_control("echo", stale, timeout=2, expect=1))[0],
                                    type=ControlReply)
        assert "expired" in reply.detail and not inst.frozen
        n.cancel_scope.cancel()


async def test_graceful_stop_finishes_in_flight_work():
    t = LocalTransport()
    async with trio.open_nursery() as n:
        inst = await start(n, t)
        results = []

        async def slow():
            results.append(await t.call("echo.Sleep", Sleep(0.2), caller=CLIENT, timeout=5))
        n.start_soon(slow)
        await trio.sleep(0.05)
        await inst.stop()
        assert [r.status for r in results] == [200]
        assert inst.frozen and inst.rt.deps is None


SLOW_HOT = '''
from workup.services.echo import Sleep

async def handler(ctx, req: Sleep):
    return {"new": True}
'''


async def test_in_flight_call_finishes_on_the_old_handler():
    t = LocalTransport()
    async with trio.open_nursery() as n:
        await start(n, t)
        old = []

        async def slow():
            old.append(reply_body(await t.call("echo.Sleep", Sleep(0.3), caller=CLIENT, timeout=5)))
        n.start_soon(slow)
        await trio.sleep(0.05)
        replies = await control(t, "echo", "update-command", "Sleep", source=SLOW_HOT, expect=1)
        assert replies[0].ok
        assert reply_body(await t.call("echo.Sleep", Sleep(0.3), caller=CLIENT, timeout=5)) == {"new": True}
        with trio.fail_after(2):
            while not old:
                await trio.sleep(0.01)
        assert "pid" in old[0] and "new" not in old[0]
        n.cancel_scope.cancel()


async def test_a_failed_start_stays_frozen_and_says_why():
    from contextlib import asynccontextmanager

    opened = []

    @asynccontextmanager
    async def deps(settings):
        if opened:
            raise ConnectionError("database is down")
        opened.append(1)
        yield None

    svc: Service[None] = Service("flaky", open_deps=deps)
    t = LocalTransport()
    async with trio.open_nursery() as n:
        inst = await start(n, t, service=svc)
        await control(t, "flaky", "freeze", expect=1)
        replies = await control(t, "flaky", "start", expect=1)
        assert not replies[0].ok and "database is down" in replies[0].detail
        assert inst.frozen and replies[0].status.frozen
        opened.clear()
        replies = await control(t, "flaky", "start", expect=1)
        assert replies[0].ok and not inst.frozen
        n.cancel_scope.cancel()


async def test_work_cut_off_by_the_grace_period_is_requeued():
    t = LocalTransport()
    async with trio.open_nursery() as n:
        a = await start(n, t, grace=0.05)
        replies = []

        async def slow():
            replies.append(reply_body(await t.call("echo.Sleep", Sleep(0.3), caller=CLIENT, timeout=5)))
        n.start_soon(slow)
        await trio.sleep(0.02)
        b = await start(n, t)
        await a.stop()  # cut off after 50 ms: the delivery goes back and b answers it
        with trio.fail_after(3):
            while not replies:
                await trio.sleep(0.01)
        assert b.handled == 1 and a.handled == 0
        n.cancel_scope.cancel()
