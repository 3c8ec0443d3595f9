"""Independent store statements (or calls) of one handler, awaited at once: the time of the
slowest, not the sum. For steps whose order carries no meaning; where it does (an outbox intent
before the change it guards, a read after the write it must see) the awaits stay one after the
other. Each user says at the call why its order does not matter.

A failure surfaces as itself, not as trio's exception group, so a handler's ``ProblemError``
stays a problem reply (``dispatch.py``) and ``except ProblemError`` around it keeps working;
the other awaitables are cancelled.
"""

from __future__ import annotations

from typing import Awaitable, TypeVar, overload

import trio

__all__ = ["together"]

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")


@overload
async def together(a: Awaitable[A], b: Awaitable[B], /) -> tuple[A, B]: ...
@overload
async def together(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], /) -> tuple[A, B, C]: ...


async def together(*steps: Awaitable[object]) -> tuple[object, ...]:
    """The results of ``steps`` (in their order), awaited concurrently."""
    results: list[object] = [None] * len(steps)

    async def run(i: int, step: Awaitable[object]) -> None:
        results[i] = await step

    try:
        async with trio.open_nursery() as nursery:
            for i, step in enumerate(steps):
                nursery.start_soon(run, i, step)
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise
    return tuple(results)


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
