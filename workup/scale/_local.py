"""This machine: ``workup worker`` supervisors, scaled by their number of processes.

Each service's supervisors are found with the controller's ``status``; CPU is the busy time of
their child processes (psutil) between two cycles divided by the wall time and the number of
processes (one process uses at most one core); queue depth is the ready count of the service's
work queue (a passive declare). Scaling broadcasts the signed ``set-processes N``.

A service answered only by processes without a supervisor (the embedded ``workup up``, reached
through its admin channel, or a distributed ``workup up``) is observed the same way, but its
process count is fixed: a decision to change it is logged with the reason, not applied
(``docs/workers.md``, "Scaling the embedded system").
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Sequence

import msgspec
import psutil
import trio

from ..amqp import AMQPError
from ..controller import ControlBus, broadcast
from ..runtime.control import ControlReply
from ._loop import Unavailable
from ._policy import Observation

if TYPE_CHECKING:  # the broker's own transport: queue depth is read with a passive declare
    from ..transport.rabbitmq import AmqpTransport

log = logging.getLogger("workup.scale")

# why a process without a supervisor keeps its count (the embedded system's every service shares one)
FIXED = ("runs without a `workup worker` supervisor (embedded workup up: every service inside its one "
         "process, on an in-process transport no other process can join); its processes are not scaled")

__all__ = ["LocalService", "LocalProvider"]


class LocalService(msgspec.Struct, frozen=True):
    name: str
    replicas: int                 # processes per supervisor (the largest, if they differ)
    pids: tuple[int, ...]         # all worker processes of the service
    labels: dict[str, str] = {}
    supervised: bool = True       # False: processes without a supervisor, whose count is fixed


class LocalProvider:
    def __init__(self, transport: AmqpTransport | ControlBus, control_secret: str, service_names: Sequence[str], *,
                 status_timeout: float = 1.0) -> None:
        self._transport = transport
        self._secret = control_secret
        self._names = list(service_names)
        self._timeout = status_timeout
        self._last: dict[str, tuple[float, dict[int, float]]] = {}  # service -> (wall, cpu secs by pid)
        self._fixed: set[str] = set()   # services of the last services() without a supervisor
        self.scope = f"`workup worker` supervisor or `workup up` answered for {', '.join(self._names)}"

    async def services(self) -> list[LocalService]:
        found = []
        for name in self._names:
            replies = await self._control(name, "status")
            supervisors = [r.status for r in replies if r.ok and r.status and r.status.role == "supervisor"]
            alone = [r.status for r in replies if r.ok and r.status and r.status.supervisor is None
                     and r.status.role == "process"]
            if supervisors:
                found.append(LocalService(name, max(s.processes or len(s.children) for s in supervisors),
                                          tuple(pid for s in supervisors for pid in s.children)))
            elif alone:
                found.append(LocalService(name, len(alone), tuple(s.pid for s in alone), supervised=False))
        self._fixed = {svc.name for svc in found if not svc.supervised}
        return found

    async def observe(self, services: Sequence[LocalService]) -> dict[str, Observation]:
        out = {}
        for svc in services:
            now = time.monotonic()
            cpu = _cpu_seconds(svc.pids)
            utilisation = None
            previous = self._last.get(svc.name)
            if previous is not None and cpu:
                wall, before = previous
                busy = sum(cpu[p] - before[p] for p in cpu if p in before)
                counted = sum(1 for p in cpu if p in before)
                if counted and now > wall:
                    utilisation = busy / (now - wall) / counted
            self._last[svc.name] = (now, cpu)
            out[svc.name] = Observation(replicas=svc.replicas, utilisation=utilisation,
                                        queue_depth=await self._queue_depth(svc.name), at=now)
        return out

    async def scale(self, name: str, replicas: int) -> None:
        if name in self._fixed:
            log.warning("%s: not scaled to %d: it %s", name, replicas, FIXED)
            return
        await self._control(name, "set-processes", str(replicas))

    async def _control(self, service: str, command: str, *args: str) -> list[ControlReply]:
        """A signed broadcast; a broker or admin channel that cannot be reached is Unavailable."""
        try:
            return await broadcast(self._transport, service, self._secret, command, list(args), timeout=self._timeout)
        except (AMQPError, OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise Unavailable("the control channel", exc) from exc

    async def _queue_depth(self, service: str) -> int | None:
        from ..transport.rabbitmq import AmqpTransport

        if not isinstance(self._transport, AmqpTransport):
            return None  # the embedded system's admin channel shows no queue: unknown, not zero
        try:
            async with await self._transport.conn.channel() as channel:
                info = await channel.declare_queue(self._transport.queue_name(service), passive=True)
            depth: int = info.message_count
            return depth
        except Exception:  # no such queue yet: unknown, not zero
            return None


def _cpu_seconds(pids: Sequence[int]) -> dict[int, float]:
    out = {}
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            out[pid] = t.user + t.system
        except psutil.Error:
            continue
    return out
