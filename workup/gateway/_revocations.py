"""Closed-account check for every authenticated request.

The users service sets the flag :func:`workup.cache.closed_account_key` (no TTL) when an account is
closed. The gateway asks the cache, with a small in-process memo in front: a "closed" answer is
kept for good, an "open" answer for :attr:`ttl` seconds (so another gateway instance refuses a
closed account's tokens at most that long after the close; the instance that forwarded the
``DELETE /me`` is told directly through :meth:`mark_closed`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Callable

from ..cache import Cache, closed_account_key

__all__ = ["Revocations"]


class Revocations:
    def __init__(self, cache: Cache, *, ttl: float = 1.0, size: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cache = cache
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._open_until: OrderedDict[str, float] = OrderedDict()
        self._closed: set[str] = set()

    async def is_closed(self, user_id: str) -> bool:
        if user_id in self._closed:
            return True
        now = self._clock()
        until = self._open_until.get(user_id)
        if until is not None and until > now:
            return False
        if await self._cache.get_flag(closed_account_key(user_id)) is not None:
            self.mark_closed(user_id)
            return True
        self._open_until[user_id] = now + self._ttl
        self._open_until.move_to_end(user_id)
        if len(self._open_until) > self._size:
            self._open_until.popitem(last=False)
        return False

    def mark_closed(self, user_id: str) -> None:
        self._closed.add(user_id)
        self._open_until.pop(user_id, None)
