"""The runtime over the real RabbitMQ (unique names per test)."""

from __future__ import annotations

import msgspec
import pytest
import trio

from workup.transport.envelope import Caller, reply_body
from workup.settings import Settings
from workup.transport import DeadlineExceeded, NoResponder
from workup.transport import AmqpTransport
from workup.runtime import load_service, serve_service
from workup.runtime.control import ControlReply, control_key, sign
from workup.services.echo import Burn, Echo, Fail, Notify, Relay, Sleep

from ._amqp_env import AMQP_URL, delete_topology, unique_prefix

CLIENT = Caller("u1", "CLIENT")
SECRET = "amqp-test-secret"


async def start(nursery, transport, concurrency=8):
    return await nursery.start(lambda task_status: serve_service(
        load_service("echo"), Settings(amqp_url=AMQP_URL), transport, concurrency=concurrency,
        grace=5, control_secret=SECRET, task_status=task_status))


async def test_rpc_problems_and_events():
    prefix = unique_prefix()
    async with AmqpTransport.connect(AMQP_URL, prefix=prefix) as t:
        with pytest.raises(NoResponder):
            await t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=2)
        async with trio.open_nursery() as n:
            await start(n, t)
            reply = await t.call("echo.Echo", Echo("hi", 7), caller=CLIENT, timeout=5)
            assert reply_body(reply) == {"text": "hi", "n": 7}
            assert (await t.call("echo.Nope", Echo("x"), caller=CLIENT, timeout=5)).status == 501
            assert (await t.call("echo.Echo", Burn(1), caller=CLIENT, timeout=5)).status == 400
            crash = await t.call("echo.Fail", Fail("crash"), caller=CLIENT, timeout=5, request_id="r-9")
            assert crash.status == 500 and b"r-9" in crash.body and b"secret" not in crash.body
            body = reply_body(await t.call("echo.Relay", Relay(), caller=CLIENT, timeout=5))
            assert body["role"] == "SERVICE"
            with pytest.raises(DeadlineExceeded):
                await t.call("echo.Sleep", Sleep(0.5), caller=CLIENT, timeout=0.1)

            got = []

            async def collect():
                async for e in t.subscribe():
                    got.append(e)
                    return
            n.start_soon(collect)
            await trio.sleep(0.3)
            await t.call("echo.Notify", Notify("x.done", ["u9"]), caller=CLIENT, timeout=5)
            with trio.fail_after(3):
                while not got:
                    await trio.sleep(0.02)
            assert got[0].type == "x.done" and got[0].recipients == ["u9"]

            # 500 concurrent calls, each answered exactly once with its own payload
            results = {}

            async def one(i):
                results[i] = reply_body(await t.call("echo.Echo", Echo("n", i), caller=CLIENT, timeout=20))["n"]
            async with trio.open_nursery() as calls:
                for i in range(500):
                    calls.start_soon(one, i)
            assert results == {i: i for i in range(500)}
            n.cancel_scope.cancel()
        await delete_topology(t)


async def control(t, command, *args, key=SECRET, expect=2, source=None):
    payload = sign(control_key(key), "echo", command, args, source=source)
    raw = await t.broadcast_control("echo", payload, timeout=3, expect=expect)
    return [msgspec.json.decode(r, type=ControlReply) for r in raw]


async def test_freeze_leaves_messages_queued_and_start_drains_them():
    prefix = unique_prefix()
    async with AmqpTransport.connect(AMQP_URL, prefix=prefix) as t:
        async with trio.open_nursery() as n:
            await start(n, t)
            await start(n, t)
            replies = await control(t, "freeze")
            assert len(replies) == 2 and all(r.ok and r.status.frozen for r in replies)
            assert await t.consumer_count("echo") == 0
            await trio.sleep(1.1)  # the cached consumer count expires
            with pytest.raises(NoResponder):
                await t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=2)
            answers = []

            async def queued(i):
                r = await t.call("echo.Echo", Echo("q", i), caller=CLIENT, timeout=20, require_consumer=False)
                answers.append(reply_body(r)["n"])
            for i in range(5):
                n.start_soon(queued, i)
            with trio.fail_after(5):
                while True:
                    ch = await t.conn.channel()
                    info = await ch.declare_queue(f"{prefix}.echo", passive=True)
                    await ch.close()
                    if info.message_count == 5:
                        break
                    await trio.sleep(0.05)
            assert answers == []
            replies = await control(t, "start")
            assert all(r.ok and not r.status.frozen for r in replies)
            with trio.fail_after(5):
                while len(answers) < 5:
                    await trio.sleep(0.05)
            assert sorted(answers) == [0, 1, 2, 3, 4]
            n.cancel_scope.cancel()
        await delete_topology(t)


async def test_redeliveries_are_counted_then_dead_lettered():
    from workup import amqp
    from workup.transport.envelope import ANONYMOUS, Envelope, encode, to_headers
    from workup.transport.rabbitmq import ATTEMPTS_HEADER, MAX_ATTEMPTS

    prefix = unique_prefix()
    queue = f"{prefix}.echo"
    async with AmqpTransport.connect(AMQP_URL, prefix=prefix) as t:
        ch = await t.conn.channel(confirms=True)
        await ch.declare_exchange(f"{prefix}.dlx", "direct", durable=True)
        await ch.declare_queue(f"{queue}.dead", durable=True)
        await ch.bind_queue(f"{queue}.dead", f"{prefix}.dlx", queue)
        await ch.declare_queue(queue, durable=True, arguments={"x-dead-letter-exchange": f"{prefix}.dlx"})
        for attempts, text in [(MAX_ATTEMPTS - 1, "poison"), (1, "retry")]:
            body = encode(Echo(text))   # signed as the gateway would (the runtime refuses it unsigned)
            signed = Envelope("echo.Echo", ANONYMOUS, 4e9, text,
                              t.identity.sign("echo.Echo", ANONYMOUS, 4e9, text, body))
            await ch.publish(body, routing_key=queue, properties=amqp.Properties(
                type="echo.Echo", message_id=text, headers={ATTEMPTS_HEADER: attempts, **to_headers(signed)}))
        # a consumer takes both and dies without acking: the broker redelivers them
        grabber = await t.conn.channel()
        consumer = await grabber.consume(queue)
        with trio.fail_after(5):
            for _ in range(2):
                await consumer.__anext__()
        await grabber.close()

        async with trio.open_nursery() as n:
            inst = await start(n, t)
            with trio.fail_after(10):
                while inst.handled < 1:
                    await trio.sleep(0.05)
                while (await ch.declare_queue(f"{queue}.dead", passive=True)).message_count < 1:
                    await trio.sleep(0.05)
            await trio.sleep(0.2)
            assert inst.handled == 1  # "retry" came back with its count raised and was handled
            n.cancel_scope.cancel()
        dead = await ch.consume(f"{queue}.dead")
        with trio.fail_after(5):
            d = await dead.__anext__()
        assert d.properties.message_id == "poison"
        d.ack()
        await dead.cancel()
        await ch.close()
        await delete_topology(t)


async def test_set_max_threads_changes_the_prefetch():
    prefix = unique_prefix()
    async with AmqpTransport.connect(AMQP_URL, prefix=prefix) as t:
        ch = await t.conn.channel()

        async def ready_messages():
            return (await ch.declare_queue(f"{prefix}.echo", passive=True)).message_count

        async def wait_ready(n):
            seen = []
            with trio.move_on_after(5):
                while not seen or seen[-1] != n:
                    seen.append(await ready_messages())
                    await trio.sleep(0.05)
            assert seen[-1] == n, seen

        async with trio.open_nursery() as n:
            inst = await start(n, t, concurrency=2)
            done = []

            async def call():
                done.append(await t.call("echo.Sleep", Sleep(0.6), caller=CLIENT, timeout=20))
            for _ in range(10):
                n.start_soon(call)
            await wait_ready(8)  # prefetch 2: two in flight, eight waiting in the queue
            replies = await control(t, "set-max-threads", "5", expect=1)
            assert replies[0].ok and inst.max_threads == 5
            await wait_ready(3)  # a new consumer with prefetch 5 (the old one's 2 finish first)
            with trio.fail_after(10):
                while len(done) < 10:
                    await trio.sleep(0.05)
            assert all(r.status == 200 for r in done)
            n.cancel_scope.cancel()
        await ch.close()
        await delete_topology(t)


async def test_subscription_cut_off_during_set_up_leaves_the_connection_working():
    # cancelling subscribe() while its exchange/queue/bind are in flight closes the channel with
    # replies still on the way; the connection must survive it (it once died with a 505)
    import random

    rng = random.Random(7)
    prefix = unique_prefix()
    async with AmqpTransport.connect(AMQP_URL, prefix=prefix) as t:
        async with trio.open_nursery() as n:
            await start(n, t)
            for _ in range(20):
                with trio.move_on_after(rng.uniform(0.001, 0.010)):
                    async for _event in t.subscribe():
                        break
            reply = await t.call("echo.Echo", Echo(text="still here"), caller=Caller("u", "CLIENT"),
                                 timeout=5)
            assert reply_body(reply)["text"] == "still here"
            assert t.conn.is_open
            n.cancel_scope.cancel()
        await delete_topology(t)


async def test_delete_topology_removes_what_a_service_declared():
    from workup import amqp

    prefix = unique_prefix()
    async with AmqpTransport.connect(AMQP_URL, prefix=prefix) as t:
        async with trio.open_nursery() as n:
            await start(n, t)
            n.cancel_scope.cancel()
        async with await t.conn.channel() as ch:
            assert (await ch.declare_queue(f"{prefix}.echo.dead", passive=True)).name == f"{prefix}.echo.dead"
        await t.delete_topology(["echo"])
        for name in (f"{prefix}.echo", f"{prefix}.echo.dead"):
            with pytest.raises(amqp.ChannelClosed) as info:
                async with await t.conn.channel() as ch:
                    await ch.declare_queue(name, passive=True)
            assert info.value.reply_code == 404
        await t.delete_topology(["echo"])  # again: nothing left, no error
