"""The broker itself killed (SIGKILL, no clean shutdown) and restarted mid-stream, on a private
RabbitMQ node: the client reconnects on its own, restores its topology and consumers, and no
publish the broker confirmed is lost."""

from __future__ import annotations

import trio

from workup import amqp
from workup.amqp import Properties

from ._fakes import confirmed_in_queue

PERSISTENT = Properties(delivery_mode=2)


async def test_broker_killed_and_restarted_mid_stream_loses_no_confirmed_publish(broker, name) -> None:
    confirmed: list[int] = []
    received: list[int] = []
    async with amqp.connect(broker.url, name="test-broker-restart", reconnect_max_delay=1.0) as conn:
        ch = await conn.channel(confirms=True)
        await ch.declare_queue(name, durable=True)          # survives the restart, with its messages
        work = f"{name}.work"
        await ch.declare_queue(work, durable=True)
        consumer_ch = await conn.channel(prefetch=100)
        consumer = await consumer_ch.consume(work)

        async def consume() -> None:
            async for delivery in consumer:
                received.append(int(delivery.body))
                delivery.ack()

        restarted = trio.Event()

        async def publish() -> None:
            i = 0
            while not (restarted.is_set() and len(confirmed) >= cut_at + 200):
                await ch.publish(str(i).encode(), routing_key=name, properties=PERSISTENT)
                confirmed.append(i)
                i += 1

        with trio.fail_after(240):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consume)
                cut_at = 10**9
                nursery.start_soon(publish)
                while len(confirmed) < 200:
                    await trio.sleep(0.01)
                cut_at = len(confirmed)
                await trio.to_thread.run_sync(broker.kill)
                await trio.sleep(1.0)                        # the client sees it gone and retries
                assert not conn._up
                await trio.to_thread.run_sync(broker.start)
                restarted.set()
                while len(confirmed) < cut_at + 200:
                    await trio.sleep(0.05)
                # the restored consumer of the work queue gets what is published after the restart
                await ch.publish(b"424242", routing_key=work, properties=PERSISTENT)
                while 424242 not in received:
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()

        assert conn.reconnects >= 1
        total = len(confirmed)
        assert confirmed == list(range(total)) and total >= cut_at + 200
        # every confirmed message is in the durable queue (at-least-once: duplicates allowed)
        reader = await conn.channel(prefetch=500)
        assert await confirmed_in_queue(reader, name, total, timeout=30) == set(range(total))
