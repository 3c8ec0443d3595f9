"""This machine: ``workup worker`` supervisors, scaled by their number of processes.

Each service's supervisors are found with the controller's ``status``; CPU is the busy time of
their child processes (psutil) between two cycles divided by the wall time and the number of
processes (one process uses at most one core); queue depth is the ready count of the service's
work queue (a passive declare). Scaling broadcasts the signed ``set-processes N``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Sequence

import msgspec
import psutil
import trio

from ..amqp import AMQPError
from ..controller import broadcast
from ._loop import Unavailable
from ._policy import Observation

if TYPE_CHECKING:  # the broker's own transport: queue depth is read with a passive declare
    from ..transport.rabbitmq import AmqpTransport

__all__ = ["LocalService", "LocalProvider"]


class LocalService(msgspec.Struct, frozen=True):
    name: str
    replicas: int                 # processes per supervisor (the largest, if they differ)
    pids: tuple[int, ...]         # all worker processes of the service
    labels: dict[str, str] = {}


class LocalProvider:
    def __init__(self, transport: AmqpTransport, control_secret: str, service_names: Sequence[str], *,
                 status_timeout: float = 1.0) -> None:
        self._transport = transport
        self._secret = control_secret
        self._names = list(service_names)
        self._timeout = status_timeout
        self._last: dict[str, tuple[float, dict[int, float]]] = {}  # service -> (wall, cpu secs by pid)
        self.scope = f"`workup worker` supervisor answered for {', '.join(self._names)}"

    async def services(self) -> list[LocalService]:
        found = []
        for name in self._names:
            try:
                replies = await broadcast(self._transport, name, self._secret, "status", timeout=self._timeout)
            except (AMQPError, OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                raise Unavailable("the broker", exc) from exc
            supervisors = [r.status for r in replies if r.ok and r.status and r.status.role == "supervisor"]
            if supervisors:
                found.append(LocalService(name, max(s.processes or len(s.children) for s in supervisors),
                                          tuple(pid for s in supervisors for pid in s.children)))
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
        try:
            await broadcast(self._transport, name, self._secret, "set-processes", [str(replicas)],
                            timeout=self._timeout)
        except (AMQPError, OSError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise Unavailable("the broker", exc) from exc

    async def _queue_depth(self, service: str) -> int | None:
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
