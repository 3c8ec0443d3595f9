"""A tiny service for the runtime's tests and benchmarks (not part of the marketplace).

Commands: ``Echo`` (returns its input), ``Burn`` (CPU-bound loop), ``Fail`` (a problem or a
crash), ``Sleep``, and ``Tally`` (appends a line to a file, sleeps, answers the number of lines:
an observable, idempotent-by-inspection command for redelivery tests). Its deps hold a database
pool when ``payments_postgres_url`` is set (psycopg_pool, so ``set-max-db-connections`` can be
watched in ``pg_stat_activity``), else a pretend pool that only remembers its size.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Literal

import msgspec
import trio

from ...problems import ProblemError
from ...settings import Settings
from ...runtime.service import Context, Service

__all__ = ["service", "Echo", "Burn", "Fail", "Sleep", "Tally", "Whoami", "Relay", "Notify", "EchoDeps"]


class Echo(msgspec.Struct):
    text: str
    n: int = 0


class Burn(msgspec.Struct):
    iterations: int


class Fail(msgspec.Struct):
    kind: Literal["problem", "crash"]


class Sleep(msgspec.Struct):
    seconds: float


class Tally(msgspec.Struct):
    path: str
    sleep: float = 0.0


class Whoami(msgspec.Struct):
    pass


class Relay(msgspec.Struct):
    """Calls ``echo.Whoami`` through the runtime (as SERVICE) and returns its answer."""

    timeout: float = 5.0


class Notify(msgspec.Struct):
    type: str
    recipients: list[str]


class EchoDeps:
    """A database pool whose size the controller may change, and a lane of blocking calls that
    follows ``set-max-threads`` (both of :class:`workup.runtime.Deps`)."""

    def __init__(self, pool: Any, size: int) -> None:
        self.pool = pool
        self._size = size
        self.limiter = trio.CapacityLimiter(4)

    @property
    def db_pool(self) -> EchoDeps:
        return self

    @property
    def blocking(self) -> trio.CapacityLimiter:
        return self.limiter

    def pool_size(self) -> int:
        return self.pool.max_size if self.pool is not None else self._size

    async def resize_pool(self, size: int) -> None:
        if self.pool is not None:
            await trio.to_thread.run_sync(self.pool.resize, size, size, limiter=self.limiter)
        self._size = size


@asynccontextmanager
async def open_echo_deps(settings: Settings) -> AsyncIterator[EchoDeps]:
    url = settings.payments_postgres_url
    if url is None:
        yield EchoDeps(None, 2)
        return
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(url, min_size=2, max_size=2, open=False, name="workup-echo")
    deps = EchoDeps(pool, 2)
    await trio.to_thread.run_sync(lambda: pool.open(wait=True, timeout=10), limiter=deps.limiter)
    try:
        yield deps
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(pool.close, limiter=deps.limiter)


service: Service[EchoDeps] = Service("echo", open_deps=open_echo_deps)


@service.command(Echo)
async def echo(ctx: Context[EchoDeps], req: Echo) -> Echo:
    return req


@service.command(Burn)
async def burn(ctx: Context[EchoDeps], req: Burn) -> dict[str, int]:
    acc = 0
    for i in range(req.iterations):  # deliberately CPU-bound, holds the GIL
        acc = (acc * 31 + i) & 0xFFFFFFFF
    return {"acc": acc, "pid": os.getpid()}


@service.command(Fail)
async def fail(ctx: Context[EchoDeps], req: Fail) -> None:
    if req.kind == "problem":
        raise ProblemError(409, "asked to fail")
    raise RuntimeError("secret internal detail")


@service.command(Sleep)
async def sleep(ctx: Context[EchoDeps], req: Sleep) -> dict[str, int]:
    await trio.sleep(req.seconds)
    return {"pid": os.getpid()}


@service.command(Tally)
async def tally(ctx: Context[EchoDeps], req: Tally) -> dict[str, int]:
    def append() -> None:
        with open(req.path, "a") as f:
            f.write(f"{os.getpid()}\n")
    await trio.to_thread.run_sync(append, limiter=ctx.deps.limiter)
    await trio.sleep(req.sleep)
    with open(req.path) as f:
        lines = f.read().split()
    return {"attempts": len(lines), "pid": os.getpid()}


@service.command(Whoami)
async def whoami(ctx: Context[EchoDeps], req: Whoami) -> dict[str, Any]:
    return {"userId": ctx.caller.user_id, "role": ctx.caller.role, "requestId": ctx.request_id}


@service.command(Relay)
async def relay(ctx: Context[EchoDeps], req: Relay) -> Any:
    return await ctx.call("echo.Whoami", Whoami(), timeout=req.timeout)


@service.command(Notify, status=202)
async def notify(ctx: Context[EchoDeps], req: Notify) -> None:
    await ctx.emit(req.type, req.recipients, {"by": ctx.caller.user_id or ""})
