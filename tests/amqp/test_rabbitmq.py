"""Against the real RabbitMQ: RPC, concurrency, timeouts, big messages, broker errors."""

from __future__ import annotations

import collections
import socket

import pytest
import trio

from workup import amqp
from workup.amqp import Properties


async def _echo_server(ch: amqp.Channel, queue: str, seen: collections.Counter | None = None,
                       *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    async with await ch.consume(queue) as consumer:
        task_status.started()
        async for delivery in consumer:
            if seen is not None:
                seen[delivery.properties.correlation_id] += 1
            if delivery.body != b"silence":
                await ch.reply(delivery, b"echo:" + delivery.body,
                               properties=Properties(headers={"n": len(delivery.body)}))
            delivery.ack()


async def test_rpc_round_trip(amqp_url: str, name: str) -> None:
    async with amqp.connect(amqp_url, name="test-rpc") as conn:
        ch = await conn.channel(prefetch=16)
        await ch.declare_queue(name, auto_delete=True)
        async with trio.open_nursery() as nursery:
            await nursery.start(_echo_server, ch, name)
            rpc = await amqp.RpcClient.open(conn)
            reply = await rpc.call(name, b"hello", timeout=5,
                                   properties=Properties(type="test.Echo",
                                                         headers={"deadline": 1.5e9 + 0.25}))
            assert reply.body == b"echo:hello"
            assert reply.properties.headers == {"n": 5}
            assert reply.properties.correlation_id is not None
            assert conn._stream is not None  # small frames leave at once: no Nagle delay
            assert conn._stream.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            nursery.cancel_scope.cancel()


async def test_thousand_concurrent_rpcs_answered_exactly_once(amqp_url: str, name: str) -> None:
    async with amqp.connect(amqp_url, name="test-rpc-1000") as server_conn, \
            amqp.connect(amqp_url, name="test-rpc-1000-client") as client_conn:
        ch = await server_conn.channel(prefetch=128)
        await ch.declare_queue(name, auto_delete=True)
        seen: collections.Counter = collections.Counter()
        replies: dict[int, bytes] = {}
        async with trio.open_nursery() as nursery:
            await nursery.start(_echo_server, ch, name, seen)
            rpc = await amqp.RpcClient.open(client_conn)

            async def one(i: int) -> None:
                reply = await rpc.call(name, str(i).encode(), timeout=20)
                assert i not in replies
                replies[i] = reply.body

            with trio.fail_after(30):
                async with trio.open_nursery() as calls:
                    for i in range(1000):
                        calls.start_soon(one, i)
            nursery.cancel_scope.cancel()
        assert replies == {i: b"echo:%d" % i for i in range(1000)}
        assert len(seen) == 1000 and set(seen.values()) == {1}


async def test_timeout_is_a_typed_error_and_late_replies_are_dropped(amqp_url: str,
                                                                     name: str) -> None:
    async with amqp.connect(amqp_url, name="test-timeout") as conn:
        ch = await conn.channel()
        await ch.declare_queue(name, auto_delete=True)
        rpc = await amqp.RpcClient.open(conn)
        with trio.fail_after(5):  # never a hang
            start = trio.current_time()
            with pytest.raises(amqp.RpcTimeout, match="within 0.3 s"):
                await rpc.call(name, b"nobody listens", timeout=0.3)
            assert 0.29 < trio.current_time() - start < 2
        # a closed client fails its calls and leaves no task behind
        other = await amqp.RpcClient.open(conn)
        await other.aclose()
        assert other._stopped.cancel_called
        with pytest.raises(amqp.ChannelClosed):
            await other.call(name, b"x", timeout=1)
        # now answer the stale request: the late reply must not reach the next call
        async with trio.open_nursery() as nursery:
            await nursery.start(_echo_server, ch, name)
            reply = await rpc.call(name, b"fresh", timeout=5)
            assert reply.body == b"echo:fresh"
            nursery.cancel_scope.cancel()


async def test_unroutable_request_fails_at_once(amqp_url: str, name: str) -> None:
    async with amqp.connect(amqp_url, name="test-unroutable") as conn:
        rpc = await amqp.RpcClient.open(conn)
        with trio.fail_after(2):
            with pytest.raises(amqp.Unroutable) as info:
                await rpc.call(name, b"x", timeout=10)
        assert info.value.reply_code == 312 and info.value.routing_key == name
        confirmed = await conn.channel(confirms=True)
        with pytest.raises(amqp.Unroutable):
            await confirmed.publish(b"x", routing_key=name, mandatory=True)
        await confirmed.publish(b"x", routing_key=name)  # not mandatory: confirmed, dropped


async def test_ten_megabyte_message(amqp_url: str, name: str) -> None:
    body = bytes(range(256)) * (10 * 1024 * 1024 // 256)
    async with amqp.connect(amqp_url, name="test-10mb") as conn:
        ch = await conn.channel(confirms=True)
        await ch.declare_queue(name, auto_delete=True)
        consumer = await ch.consume(name)
        with trio.fail_after(30):
            await ch.publish(body, routing_key=name, properties=Properties(message_id="big"))
            delivery = await consumer.__anext__()
        assert len(delivery.body) == len(body) and delivery.body == body
        assert delivery.properties.message_id == "big"
        delivery.ack()
        await consumer.cancel()
        # the frames were cut at the negotiated frame_max, and the connection still works
        assert conn._core is not None and conn._core.frame_max == 131072
        info = await ch.declare_queue(name, auto_delete=True)
        assert info.message_count == 0


async def test_channel_close_is_a_typed_error_and_the_channel_recovers(amqp_url: str,
                                                                       name: str) -> None:
    async with amqp.connect(amqp_url, name="test-channel-close") as conn:
        ch = await conn.channel()
        with pytest.raises(amqp.ChannelClosed) as info:
            await ch.declare_queue(name, passive=True)
        assert info.value.reply_code == 404 and name in info.value.reply_text
        await ch.declare_queue(name, auto_delete=True, arguments={"x-max-length": 10})
        with pytest.raises(amqp.ChannelClosed) as info:  # different arguments: 406
            await ch.declare_queue(name, auto_delete=True, arguments={"x-max-length": 11})
        assert info.value.reply_code == 406 and "PRECONDITION_FAILED" in info.value.reply_text
        info2 = await ch.declare_queue(name, passive=True)  # re-opened on next use
        assert info2.name == name
        await ch.delete_queue(name)


async def test_consumer_cancelled_when_queue_deleted(amqp_url: str, name: str) -> None:
    async with amqp.connect(amqp_url, name="test-cancel") as conn:
        ch = await conn.channel()
        await ch.declare_queue(name)
        consumer = await ch.consume(name)
        other = await conn.channel()
        await other.delete_queue(name)
        with trio.fail_after(5), pytest.raises(amqp.ConsumerCancelled):
            await consumer.__anext__()


async def test_nack_requeues_and_reject_drops(amqp_url: str, name: str) -> None:
    async with amqp.connect(amqp_url, name="test-nack") as conn:
        ch = await conn.channel(confirms=True)
        await ch.declare_queue(name, auto_delete=True)
        for body in (b"a", b"b"):
            await ch.publish(body, routing_key=name)
        with trio.fail_after(10):
            async with await ch.consume(name) as consumer:
                first = await consumer.__anext__()
                second = await consumer.__anext__()
                assert (first.body, second.body) == (b"a", b"b")
                first.nack(requeue=True)
                second.reject(requeue=False)
                again = await consumer.__anext__()
                assert again.body == b"a" and again.redelivered
                again.ack()
                with pytest.raises(RuntimeError, match="already"):
                    again.ack()
        assert (await ch.declare_queue(name, auto_delete=True)).message_count == 0


async def test_exchange_bind_and_topic_routing(amqp_url: str, name: str) -> None:
    async with amqp.connect(amqp_url, name="test-topology") as conn:
        ch = await conn.channel(confirms=True)
        await ch.declare_exchange(name, "topic")  # not auto-delete: we unbind below
        await ch.declare_queue(name, auto_delete=True)
        await ch.bind_queue(name, name, "job.*")
        consumer = await ch.consume(name)
        await ch.publish(b"1", exchange=name, routing_key="job.created")
        with pytest.raises(amqp.Unroutable):
            await ch.publish(b"2", exchange=name, routing_key="payment.paid", mandatory=True)
        with trio.fail_after(5):
            delivery = await consumer.__anext__()
        assert (delivery.body, delivery.routing_key, delivery.exchange) == (
            b"1", "job.created", name)
        delivery.ack()
        await ch.unbind_queue(name, name, "job.*")
        with pytest.raises(amqp.Unroutable):
            await ch.publish(b"3", exchange=name, routing_key="job.created", mandatory=True)
        await consumer.cancel()
        await ch.delete_queue(name)
        await ch.delete_exchange(name)


async def test_bad_credentials_and_vhost(amqp_url: str) -> None:
    p = amqp.parse_url(amqp_url)
    with trio.fail_after(10):
        with pytest.raises(amqp.ConnectionClosed) as info:
            async with amqp.connect(amqp.ConnectionParams(host=p.host, port=p.port,
                                                          username=p.username,
                                                          password="wrong-password")):
                pass  # pragma: no cover
        assert info.value.reply_code == 403
        with pytest.raises(amqp.ConnectionClosed) as info:
            async with amqp.connect(amqp.ConnectionParams(
                    host=p.host, port=p.port, username=p.username, password=p.password,
                    virtual_host="no-such-vhost")):
                pass  # pragma: no cover
        assert info.value.reply_code == 530


async def test_heartbeats_keep_an_idle_connection_alive(amqp_url: str) -> None:
    async with amqp.connect(amqp_url + "?heartbeat=1", name="test-heartbeat",
                            reconnect=False) as conn:
        assert conn._core is not None and conn._core.heartbeat == 1
        await trio.sleep(3.5)  # the broker closes a connection after 2 missed heartbeats
        assert conn.is_open and conn.reconnects == 0
        ch = await conn.channel()
        await ch.declare_queue("", exclusive=True)


async def test_cancel_keeps_buffered_deliveries_and_exit_requeues_them(amqp_url: str,
                                                                       name: str) -> None:
    async with amqp.connect(amqp_url, name="test-consumer-cancel") as conn:
        ch = await conn.channel(confirms=True, prefetch=10)
        await ch.declare_queue(name, auto_delete=False)
        for i in range(5):
            await ch.publish(b"%d" % i, routing_key=name)
        with trio.fail_after(10):
            consumer = await ch.consume(name)
            first = await consumer.__anext__()
            while len(consumer._buffer) < 4:
                await trio.sleep(0.01)
            await consumer.cancel()
            rest = [consumer.receive_nowait() for _ in range(4)]
            assert [d.body for d in [first, *rest]] == [b"0", b"1", b"2", b"3", b"4"]
            with pytest.raises(StopAsyncIteration):
                await consumer.__anext__()
            for d in (first, *rest):
                d.nack(requeue=True)
            async with await ch.consume(name) as again:
                got = await again.__anext__()
                got.ack()
                while len(again._buffer) < 4:
                    await trio.sleep(0.01)
            # the four never handed out were requeued when the block ended
            while (await ch.declare_queue(name, passive=True)).message_count < 4:
                await trio.sleep(0.05)
        await ch.delete_queue(name)


async def test_many_waiters_share_one_consumer(amqp_url: str, name: str) -> None:
    """Tasks waiting on one consumer at once: each delivery goes to exactly one of them, a
    waiter cancelled while waiting loses nothing, and cancelling the consumer ends them all."""
    async with amqp.connect(amqp_url, name="test-consumer-waiters") as conn:
        ch = await conn.channel(confirms=True, prefetch=50)
        await ch.declare_queue(name, auto_delete=False)
        got: list[bytes] = []
        ended = 0
        with trio.fail_after(15):
            consumer = await ch.consume(name)

            async def take() -> None:
                nonlocal ended
                while True:
                    try:
                        d = await consumer.__anext__()
                    except StopAsyncIteration:
                        ended += 1
                        return
                    got.append(d.body)
                    d.ack()
                    await trio.sleep(0)

            gone = trio.CancelScope()

            async def give_up() -> None:   # a waiter that gives up before any delivery
                with gone:
                    await consumer.__anext__()

            async with trio.open_nursery() as n:
                n.start_soon(give_up)
                for _ in range(8):
                    n.start_soon(take)
                await trio.sleep(0.1)
                assert len(consumer._waiters) == 9
                gone.cancel()
                await trio.sleep(0.05)
                assert len(consumer._waiters) == 8 and gone.cancelled_caught
                for i in range(200):
                    await ch.publish(b"%d" % i, routing_key=name)
                while len(got) < 200:
                    await trio.sleep(0.01)
                await consumer.cancel()
            assert sorted(got) == sorted(b"%d" % i for i in range(200)) and ended == 8
            assert (await ch.declare_queue(name, passive=True)).message_count == 0
        await ch.delete_queue(name)


async def test_unconfirmed_publishes_wait_for_the_writer(amqp_url: str, name: str) -> None:
    from workup.amqp._channel import HIGH_WATER_FRAMES

    async with amqp.connect(amqp_url, name="test-backpressure") as conn:
        ch = await conn.channel()
        await ch.declare_queue(name, auto_delete=False, arguments={"x-max-length": 100})
        most = 0
        with trio.fail_after(30):
            for i in range(3 * HIGH_WATER_FRAMES):
                await ch.publish(b"%d" % i, routing_key=name)
                assert ch._core is not None
                most = max(most, ch._core.queued_frames)
        assert most <= HIGH_WATER_FRAMES + 1  # memory stays bounded: publishers waited
        confirmed = await conn.channel(confirms=True)
        await confirmed.publish(b"last", routing_key=name)  # everything before it was sent
        info = await ch.declare_queue(name, passive=True)
        assert info.message_count == 100
        await ch.delete_queue(name)


async def test_all_channels_in_use_is_a_clear_error(amqp_url: str) -> None:
    async with amqp.connect(amqp_url + "?channel_max=2", name="test-channel-max") as conn:
        await conn.channel()
        await conn.channel()
        with pytest.raises(amqp.AMQPError, match="all 2 channels"):
            await conn.channel()


async def test_publish_to_missing_exchange_is_a_channel_error(amqp_url: str, name: str) -> None:
    async with amqp.connect(amqp_url, name="test-missing-exchange") as conn:
        ch = await conn.channel(confirms=True)
        with trio.fail_after(5), pytest.raises(amqp.ChannelClosed) as info:
            await ch.publish(b"x", exchange=name, routing_key="k")
        assert info.value.reply_code == 404 and "no exchange" in info.value.reply_text
        await ch.declare_queue(name, auto_delete=True)
        await ch.publish(b"y", routing_key=name)  # the channel re-opened (confirm mode too)
        assert (await ch.declare_queue(name, passive=True)).message_count == 1
