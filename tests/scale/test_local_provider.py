"""The local provider against a real `workup worker` supervisor on the real broker: a CPU-bound
load makes the autoscaler add a process, and a quiet one takes it away again."""

from __future__ import annotations

import trio

from tests.controller._cluster import SECRET, cluster
from workup.transport.envelope import Caller
from workup.scale import ScalePolicy
from workup.scale._local import LocalProvider
from workup.scale._loop import Autoscaler
from workup.services.echo import Burn

# low thresholds: the machine is shared, so a busy process may get well under a full core; this
# checks the measuring and the acting, the thresholds themselves are tested in test_policy.py
POLICY = ScalePolicy(minimum=1, maximum=2, cpu_up=0.3, cpu_down=0.05, cooldown_up=0, cooldown_down=0,
                     down_window=0)


async def idle(c, timeout=60.0):
    """Wait until no worker process has work in flight and the queue is empty."""
    with trio.fail_after(timeout):
        while True:
            procs = [r.status for r in await c.status(timeout=0.5) if r.status and r.status.role == "process"]
            async with await c.t.conn.channel() as ch:
                depth = (await ch.declare_queue(c.t.queue_name("echo"), passive=True)).message_count
            if procs and depth == 0 and all(p.in_flight == 0 for p in procs):
                return
            await trio.sleep(0.2)


async def supervisors(c):
    return [r.status for r in await c.status(timeout=0.5) if r.status and r.status.role == "supervisor"]


async def test_cpu_load_scales_up_then_quiet_scales_down(tmp_path):
    async with cluster(tmp_path) as c:
        await c.start_worker("--processes", "1", "--concurrency", "4")
        await c.processes(1)
        provider = LocalProvider(c.t, SECRET, ["echo"], status_timeout=0.5)
        scaler = Autoscaler(provider, lambda svc: POLICY)

        first = await scaler.cycle()          # first sample: no CPU figure yet
        assert first["echo"].direction == "hold" and first["echo"].replicas == 1

        async def burn_forever():
            while True:
                await c.t.call("echo.Burn", Burn(iterations=2_000_000), caller=Caller("u", "CLIENT"), timeout=30)

        async with trio.open_nursery() as n:
            for _ in range(4):
                n.start_soon(burn_forever)
            await trio.sleep(2.0)
            hot = await scaler.cycle()
            n.cancel_scope.cancel()
        assert hot["echo"].direction == "up" and hot["echo"].replicas == 2, hot
        await c.processes(2)
        assert [s.processes for s in await supervisors(c)] == [2]

        await idle(c)                         # the burns already queued or running finish first
        await scaler.cycle()                  # new pids: first sample for them
        await trio.sleep(1.5)
        quiet = await scaler.cycle()
        assert quiet["echo"].direction == "down" and quiet["echo"].replicas == 1, quiet
        await c.processes(1)


async def test_queue_depth_is_read_from_the_broker(tmp_path):
    async with cluster(tmp_path) as c:
        await c.start_worker("--processes", "1")
        await c.processes(1)
        provider = LocalProvider(c.t, SECRET, ["echo", "nosuchservice"], status_timeout=0.5)
        services = await provider.services()
        assert [s.name for s in services] == ["echo"] and services[0].replicas == 1
        obs = await provider.observe(services)
        assert obs["echo"].queue_depth == 0 and obs["echo"].utilisation is None
