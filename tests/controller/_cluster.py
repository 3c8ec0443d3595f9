"""Run real ``workup worker`` supervisors and the ``workup control`` CLI as subprocesses."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import msgspec
import trio

from workup.controller import broadcast
from workup.transport import AmqpTransport
from workup.runtime.control import ControlReply

from tests.transport._amqp_env import AMQP_URL, delete_topology, unique_prefix

SECRET = "cluster-test-secret"


class Cluster:
    def __init__(self, tmp: Path, transport: AmqpTransport, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.t = transport
        self.prefix = transport.prefix
        self.env = env
        self.procs: list[trio.Process] = []

    async def start_worker(self, *args: str, service: str = "echo") -> trio.Process:
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "ab")
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "workup", "worker", service, "--grace", "5", *args],
            env=self.env, stdout=log, stderr=log, stdin=None)
        self.procs.append(proc)
        return proc

    async def status(self, expect: int | None = None, timeout: float = 2.0) -> list[ControlReply]:
        return await broadcast(self.t, "echo", SECRET, "status", timeout=timeout, expect=expect)

    async def processes(self, n: int, timeout: float = 30.0) -> list[ControlReply]:
        """Wait until ``n`` worker processes answer ``status``; their replies."""
        with trio.fail_after(timeout):
            while True:
                replies = [r for r in await self.status(timeout=0.5) if r.status and r.status.role == "process"]
                if len(replies) == n:
                    return replies
                await trio.sleep(0.2)

    async def ctl(self, *args: str, key: str | None = SECRET, service: str = "echo") -> tuple[int, str, str]:
        """``workup control SERVICE ARGS`` as a process; ``key=None``: no WORKUP_CONTROL_KEY."""
        env = dict(self.env, WORKUP_CONTROL_KEY=key) if key is not None else {
            k: v for k, v in self.env.items() if k != "WORKUP_CONTROL_KEY"}
        r = await trio.run_process([sys.executable, "-m", "workup", "control", service, *args],
                                   env=env, capture_stdout=True, capture_stderr=True, check=False)
        return r.returncode, r.stdout.decode(), r.stderr.decode()

    async def ctl_json(self, *args: str, key: str = SECRET) -> list[ControlReply]:
        rc, out, err = await self.ctl(*args, "--json", key=key)
        assert out.strip(), (rc, err)
        return msgspec.json.decode(out, type=list[ControlReply])

    async def stop_all(self) -> None:
        for p in self.procs:
            if p.returncode is None:
                p.send_signal(signal.SIGTERM)
        with trio.move_on_after(15):
            for p in self.procs:
                await p.wait()
        for p in self.procs:
            if p.returncode is None:
                p.kill()
                await p.wait()


@asynccontextmanager
async def cluster(tmp: Path, **extra_env: str) -> AsyncIterator[Cluster]:
    prefix = unique_prefix()
    env = dict(os.environ, WORKUP_AMQP_URL=AMQP_URL, WORKUP_AMQP_PREFIX=prefix,
               WORKUP_CONTROL_KEY=SECRET, WORKUP_DATA_DIR=str(tmp / "data"), **extra_env)
    async with AmqpTransport.connect(AMQP_URL, prefix=prefix) as t:
        c = Cluster(tmp, t, env)
        try:
            yield c
        finally:
            with trio.CancelScope(shield=True):
                await c.stop_all()
                await delete_topology(t)
