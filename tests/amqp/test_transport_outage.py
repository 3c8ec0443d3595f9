"""The RabbitMQ transport while its broker is away (a private node, SIGKILLed and started again):
a call never waits for the reconnect. Not sent (connection down): :class:`NoResponder` at once,
the gateway's 503; sent and then cut off: :class:`DeadlineExceeded`, its 504 (the service may
have applied it). Issue 16, docs/reliability.md figure 2."""

from __future__ import annotations

import pytest
import trio

from workup.runtime import load_service, serve_service
from workup.services.echo import Echo, Sleep
from workup.settings import Settings
from workup.transport import AmqpTransport, DeadlineExceeded, NoResponder
from workup.transport.envelope import Caller, reply_body
from workup.transport.rabbitmq import CONSUMER_CHECK_TTL


CLIENT = Caller("u1", "CLIENT")


async def _elapsed_raising(exc: type[Exception], t: AmqpTransport, request: object, timeout: float) -> float:
    started = trio.current_time()
    with pytest.raises(exc):
        await t.call(f"echo.{type(request).__name__}", request, caller=CLIENT, timeout=timeout)
    return trio.current_time() - started


async def test_a_call_while_the_broker_is_away_fails_fast_and_calls_work_again_after(broker) -> None:
    settings = Settings(amqp_url=broker.url)
    with trio.fail_after(240):
        async with AmqpTransport.connect(broker.url, prefix="outage") as server, \
                AmqpTransport.connect(broker.url, prefix="outage") as client, trio.open_nursery() as n:
            await n.start(lambda task_status: serve_service(
                load_service("echo"), settings, server, concurrency=4, grace=1,
                control_secret="outage-secret", task_status=task_status))
            assert reply_body(await client.call("echo.Echo", Echo("up"), caller=CLIENT, timeout=5))["text"] == "up"

            in_flight: list[float] = []

            async def sent_then_cut() -> None:   # published, then the broker dies under it
                in_flight.append(await _elapsed_raising(DeadlineExceeded, client, Sleep(20), 30))
            n.start_soon(sent_then_cut)
            await trio.sleep(0.5)
            await trio.to_thread.run_sync(broker.kill)
            with trio.fail_after(5):
                while not in_flight:
                    await trio.sleep(0.05)
            assert in_flight[0] < 5, in_flight   # not the 30 s timeout

            # not sent: 503 at once, also once the cached consumer count is stale (a fresh check)
            assert await _elapsed_raising(NoResponder, client, Echo("down"), 10) < 1
            await trio.sleep(CONSUMER_CHECK_TTL + 0.2)
            assert await _elapsed_raising(NoResponder, client, Echo("down"), 10) < 1

            await trio.to_thread.run_sync(broker.start)
            answered = None
            with trio.fail_after(90):
                while answered is None:
                    try:
                        answered = await client.call("echo.Echo", Echo("back"), caller=CLIENT, timeout=5)
                    except (NoResponder, DeadlineExceeded):
                        await trio.sleep(0.2)
            assert reply_body(answered)["text"] == "back"
            n.cancel_scope.cancel()
