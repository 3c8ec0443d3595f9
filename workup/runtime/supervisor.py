"""``workup worker <service> --processes N``: a trio supervisor over N child processes.

Each child is its own interpreter (own trio loop, AMQP connection and deps, see ``child.py``).
A child that exits unexpectedly is restarted with exponential backoff (reset once it has run for a
while). ``set-processes N`` from the controller changes the number at run time: extra children are
started, surplus ones are drained with SIGTERM. SIGTERM/SIGINT to the supervisor drains every child
(each stops consuming and finishes in-flight work within the grace period), then exits; a child
still running after the grace period is killed, and the broker redelivers its unacked messages.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Callable

import msgspec
import trio

from .child import ChildSpec
from .._heartbeat import HEARTBEAT_EVERY
from .control import ControlMessage, InstanceStatus, Verifier, apply_in_supervisor, control_key, sticky_key
from .instance import HOST, run_control
from .metrics import child_settings
from ..transport import ControlSource, Server

__all__ = ["Supervisor", "backoff_delay"]

log = logging.getLogger("workup.runtime.supervisor")

_BACKOFF_START, _BACKOFF_MAX, _STABLE_AFTER = 0.5, 30.0, 30.0


def backoff_delay(failures: int) -> float:
    """Seconds to wait before restarting a child that has crashed ``failures`` times in a row."""
    if failures <= 0:
        return 0.0
    return min(_BACKOFF_START * 2.0 ** (failures - 1), _BACKOFF_MAX)


class _Slot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: trio.Process | None = None
        self.retired = False
        self.failures = 0
        self.restarts = 0
        self.done = trio.Event()


class Supervisor:
    def __init__(self, spec: ChildSpec, processes: int, *,
                 connect: Callable[[], AbstractAsyncContextManager[Server]],
                 python: str = sys.executable) -> None:
        self.spec = spec
        self.heartbeat: Path | None = None   # a file to touch while alive (`workup worker --check`)
        self.target = processes
        self.connect = connect      # () -> async CM yielding a transport (for control)
        self.python = python
        self.slots: list[_Slot] = []
        self.stopping = False
        self.started_at = time.time()
        self.verifier = Verifier(control_key(spec.control_secret), spec.service, not_before=self.started_at)
        self._nursery: trio.Nursery | None = None
        self.sticky: dict[tuple[str, str], ControlMessage] = {}   # replayed to new children
        self._ready: trio.Event = trio.Event()

    # -- children --------------------------------------------------------------------------
    def pids(self) -> list[int]:
        return [s.process.pid for s in self.slots
                if s.process is not None and s.process.returncode is None and not s.retired]

    async def _spawn(self, slot: _Slot) -> trio.Process | None:
        proc = await trio.lowlevel.open_process(
            [self.python, "-m", "workup.runtime.child"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        assert proc.stdin is not None and proc.stdout is not None
        # over stdin, not the broker: what to apply, and the nonces the child must refuse as replays
        spec = msgspec.structs.replace(self.spec, replay=list(self.sticky.values()),
                                       control_seen=self.verifier.remembered(),
                                       settings=child_settings(self.spec.settings, slot.index))
        await proc.stdin.send_all(msgspec.json.encode(spec) + b"\n")
        buf = b""
        with trio.move_on_after(60):
            while b"\n" not in buf:
                chunk = await proc.stdout.receive_some(256)
                if not chunk:
                    break
                buf += chunk
        if not buf.startswith(b"READY"):
            log.error("%s: child %d did not start (exit %s)", self.spec.service, proc.pid, proc.returncode)
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    proc.kill()
                await proc.wait()
            return None
        return proc

    async def _run_slot(self, slot: _Slot) -> None:
        try:
            while not (self.stopping or slot.retired):
                delay = backoff_delay(slot.failures)
                if delay:
                    log.warning("%s: restarting child slot %d in %.1fs", self.spec.service, slot.index, delay)
                    await trio.sleep(delay)
                    if self.stopping or slot.retired:
                        return
                began = time.monotonic()
                slot.process = proc = await self._spawn(slot)
                if proc is None:
                    slot.failures += 1
                    continue
                log.info("%s: child %d running (slot %d)", self.spec.service, proc.pid, slot.index)
                self._check_ready()
                code = await proc.wait()
                if self.stopping or slot.retired:
                    return
                slot.failures = 0 if time.monotonic() - began > _STABLE_AFTER else slot.failures + 1
                slot.restarts += 1
                log.error("%s: child %d exited with %s", self.spec.service, proc.pid, code)
        finally:
            slot.done.set()

    def _check_ready(self) -> None:
        live = sum(1 for s in self.slots if s.process is not None and s.process.returncode is None)
        if live >= self.target:
            self._ready.set()

    async def _terminate(self, slot: _Slot) -> None:
        proc = slot.process
        if proc is not None and proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            with trio.move_on_after(self.spec.settings.grace + 5):
                await slot.done.wait()
            if proc.returncode is None:
                log.error("%s: child %d did not drain in time; killing it", self.spec.service, proc.pid)
                proc.kill()
        await slot.done.wait()

    async def set_processes(self, n: int) -> None:
        assert self._nursery is not None
        self.target = n
        live = [s for s in self.slots if not s.retired]
        for index in range(len(live), n):
            slot = _Slot(len(self.slots))
            self.slots.append(slot)
            self._nursery.start_soon(self._run_slot, slot)
        surplus = live[n:]
        for slot in surplus:
            slot.retired = True
        async with trio.open_nursery() as n_:
            for slot in surplus:
                n_.start_soon(self._terminate, slot)
        self.slots = [s for s in self.slots if not (s.retired and s.done.is_set())]

    # -- control ---------------------------------------------------------------------------
    def status(self) -> InstanceStatus:
        return InstanceStatus(service=self.spec.service, host=HOST, pid=os.getpid(), role="supervisor",
                              processes=self.target, children=self.pids(),
                              max_threads=self.spec.settings.concurrency,
                              uptime=round(time.time() - self.started_at, 1))

    async def _apply(self, msg: ControlMessage) -> str | None:
        # what the supervisor applies and what it leaves to the children: runtime/control.py CONTROL
        return await apply_in_supervisor(self, msg, self.remember)

    # -- main ------------------------------------------------------------------------------
    async def run(self, task_status: trio.TaskStatus[Supervisor] = trio.TASK_STATUS_IGNORED) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async with self.connect() as transport, transport.control(self.spec.service) as control:
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    # the children answer everything but these; their replies carry their state
                    nursery.start_soon(self._control, control)
                    await self.set_processes(self.target)
                    with trio.move_on_after(90):
                        await self._ready.wait()
                    task_status.started(self)
                    if self.heartbeat is not None:
                        nursery.start_soon(self._beat, self.heartbeat)
                    async for signum in signals:
                        log.info("%s: signal %d: draining %d children", self.spec.service, signum, len(self.pids()))
                        break
                    await self.stop()
                    nursery.cancel_scope.cancel()

    async def _beat(self, path: Path) -> None:
        """Liveness for ``workup worker SERVICE --check``: touched while this loop runs and a
        child lives."""
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            if self.pids():
                path.touch()
            await trio.sleep(HEARTBEAT_EVERY)

    async def _control(self, control: ControlSource) -> None:
        await run_control(control, self.verifier, f"{self.spec.service} supervisor", self._apply,
                          self.status)

    def remember(self, msg: ControlMessage) -> None:
        """Keep the latest message of each kind, in order, for children started later."""
        key = sticky_key(self.spec.service, msg)
        if key is None:
            return
        self.sticky.pop(key, None)
        self.sticky[key] = msg

    async def stop(self) -> None:
        self.stopping = True
        async with trio.open_nursery() as n:
            for slot in self.slots:
                n.start_soon(self._terminate, slot)

