"""After-reply work (``workup/runtime/context.py``): the worker loop sends the reply, runs the
work a handler handed over, then acks the delivery; on the in-process transport and on the real
RabbitMQ. A cut-off between reply and ack redelivers the request, as a crash before the reply
would; a failing piece is logged and the rest still runs."""

from __future__ import annotations

import msgspec
import trio

from workup.runtime import Service, serve_service
from workup.runtime.context import ProcessRuntime, RequestContext, after_reply
from workup.runtime.outbox import EVENT, EventCheck, intend_event, publish_event
from workup.settings import Settings
from workup.transport import AmqpTransport, LocalTransport
from workup.transport.envelope import SERVICE_CALLER, Caller, reply_body

from ..transport._amqp_env import AMQP_URL, delete_topology, unique_prefix
from .test_outbox import Rows, Rt

CLIENT = Caller("u1", "CLIENT")


class Later(msgspec.Struct):
    tag: str
    fail_first: bool = False


class Probe:
    """What the test service saw: handler runs, after-reply pieces started and finished."""

    def __init__(self) -> None:
        self.handled: list[str] = []
        self.started: list[str] = []
        self.finished: list[str] = []
        self.release = trio.Event()


def later_service(probe: Probe) -> Service[None]:
    svc: Service[None] = Service("later")

    @svc.command(Later)
    async def later(ctx, req: Later) -> dict[str, str]:
        probe.handled.append(req.tag)

        async def failing() -> None:
            raise RuntimeError("the store is away")

        async def work() -> None:
            probe.started.append(req.tag)
            await probe.release.wait()
            probe.finished.append(req.tag)
        if req.fail_first:
            await after_reply(ctx, failing)
        await after_reply(ctx, work)
        return {"tag": req.tag}
    return svc


async def start(nursery, transport, probe, grace=5.0):
    return await nursery.start(lambda task_status: serve_service(
        later_service(probe), Settings(), transport, concurrency=4, grace=grace, task_status=task_status))


async def _until(predicate, seconds=5.0):
    with trio.fail_after(seconds):
        while not predicate():
            await trio.sleep(0.01)


async def test_the_reply_goes_out_before_the_work_and_the_ack_after_it(caplog):
    t, probe = LocalTransport(), Probe()
    async with trio.open_nursery() as n:
        inst = await start(n, t, probe)
        with trio.fail_after(5):    # answered while the work is still blocked
            reply = await t.call("later.Later", Later("a", fail_first=True), caller=CLIENT, timeout=5)
        assert reply_body(reply) == {"tag": "a"}
        await _until(lambda: probe.started == ["a"])
        # the failing piece was logged and the next one ran; the delivery is not acked yet
        assert "after-reply work of request" in caplog.text and "the store is away" in caplog.text
        assert len(inst._source.unsettled) == 1 and probe.finished == []
        probe.release.set()
        await _until(lambda: not inst._source.unsettled)
        assert probe.finished == ["a"] and probe.handled == ["a"]
        n.cancel_scope.cancel()


async def test_a_cut_off_between_reply_and_ack_redelivers():
    t, probe = LocalTransport(), Probe()
    async with trio.open_nursery() as n:
        a = await start(n, t, probe, grace=0.05)
        assert reply_body(await t.call("later.Later", Later("b"), caller=CLIENT, timeout=5)) == {"tag": "b"}
        await _until(lambda: probe.started == ["b"])
        b = await start(n, t, probe)
        await a.stop()              # the work is cut off before the ack: the delivery goes back
        await _until(lambda: probe.handled == ["b", "b"])
        probe.release.set()
        await _until(lambda: probe.finished == ["b"] and not b._source.unsettled)
        assert a.handled == 1 and b.handled == 1
        n.cancel_scope.cancel()


async def test_over_rabbitmq_the_ack_waits_for_the_work():
    probe = Probe()
    async with AmqpTransport.connect(AMQP_URL, prefix=unique_prefix()) as t:
        async with trio.open_nursery() as n:
            a = await start(n, t, probe, grace=0.1)
            with trio.fail_after(10):
                reply = await t.call("later.Later", Later("c"), caller=CLIENT, timeout=10)
            assert reply_body(reply) == {"tag": "c"}
            await _until(lambda: probe.started == ["c"])
            b = await start(n, t, probe)
            await a.stop()          # unacked when cut off: the broker hands it to b
            await _until(lambda: probe.handled == ["c", "c"], 15)
            probe.release.set()
            await _until(lambda: probe.finished == ["c"])
            assert a.handled == 1 and b.handled == 1
            n.cancel_scope.cancel()
        await delete_topology(t, "later")


async def test_without_a_worker_loop_the_work_runs_at_once():
    ran: list[str] = []

    async def work() -> None:
        ran.append("now")
    rt = ProcessRuntime("later", Settings(), LocalTransport())
    await after_reply(rt, work)                                   # a relay step's runtime
    await after_reply(RequestContext(rt, SERVICE_CALLER, "r1", 0.0), work)   # dispatched alone
    assert ran == ["now", "now"]
    deferred: list = []
    ctx = RequestContext(rt, SERVICE_CALLER, "r2", 0.0, None, deferred)
    await after_reply(ctx, work)
    assert ran == ["now", "now"] and deferred == [work]


async def test_a_published_event_forgets_its_intent_without_waiting_for_the_reply():
    """The delete is asked for at once and sent within a moment (``storage.Outbox.forget``, with
    the other deletes of that moment): no after-reply work is left for it."""
    rows, emitted = Rows(), Rt(None)
    event = await intend_event(rows, "thing.done", ["u1"], {}, EventCheck("thing", "t", ("DONE",)))
    deferred: list = []

    class Ctx(RequestContext):
        async def emit(self, type, recipients, data, *, at=None):
            await emitted.emit(type, recipients, data, at=at)
    ctx = Ctx(ProcessRuntime("svc", Settings(), LocalTransport()), SERVICE_CALLER, "r", 0.0, None, deferred)
    assert await publish_event(ctx, rows, event)
    assert [e[0] for e in emitted.emitted] == ["thing.done"]
    assert [k for k, _ in rows.forgotten] == [EVENT] and not rows.rows and deferred == []
