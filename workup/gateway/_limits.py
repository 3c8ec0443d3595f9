"""The abuse limits' I/O: count an attempt in the cache, refuse it with 429 when
:func:`~workup.gateway.throttle.decide` says so, give it back when its outcome does not keep it
counted (:func:`~workup.gateway.throttle.keeps_count`)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator

import msgspec

from ..cache import Cache, CacheUnavailable
from ..problems import ProblemError
from .throttle import Count, Kind, Limit, account_subject, address_subject, counter_key, decide, keeps_count

__all__ = ["Throttle", "Throttled", "Attempt"]

_log = logging.getLogger("workup.gateway")


class Throttled(ProblemError):
    """429: too many attempts; the answer carries ``Retry-After``."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, f"too many attempts, retry in {retry_after} s")
        self.retry_after = retry_after


class Attempt(msgspec.Struct):
    """One counted attempt; :meth:`answered` records how the service answered it."""
    kind: Kind
    counted: list[tuple[Limit, str]]   # the limits it counted against, and their keys
    status: int = 500                  # not answered (504, 503, an error): not the client's doing

    def answered(self, status: int) -> None:
        self.status = status


class Throttle:
    def __init__(self, cache: Cache, limits: dict[str, Limit], *, deployment: str) -> None:
        self._cache = cache
        self._limits = limits
        self._deployment = deployment

    def _subjects(self, kind: Kind, address: str | None, account: str | None) -> list[tuple[Limit, str]]:
        if kind == "login":
            return [(self._limits["login-account"], account_subject(account or "")),
                    (self._limits["login-address"], address_subject(address))]
        return [(self._limits["register-address"], address_subject(address))]

    @asynccontextmanager
    async def attempt(self, kind: Kind, *, address: str | None,
                      account: str | None = None) -> AsyncIterator[Attempt]:
        """Count the attempt (:class:`Throttled` when over a limit), serve it, then give it back
        unless its answer keeps it counted. A cache that cannot be asked limits nothing (logged):
        availability first, as for the closed-account check."""
        counted: list[tuple[Limit, str]] = []
        counts: list[tuple[Limit, Count]] = []
        try:
            for limit, subject in self._subjects(kind, address, account):
                key = counter_key(self._deployment, limit, subject)
                used, remaining = await self._cache.count(key, by=1, ttl=limit.window)
                counted.append((limit, key))
                counts.append((limit, Count(used, remaining)))
        except CacheUnavailable as exc:
            _log.warning("abuse limits skipped, cache unavailable: %s", exc)
        decision = decide(counts)
        if not decision.allowed:
            raise Throttled(decision.retry_after)
        attempt = Attempt(kind, counted)
        try:
            yield attempt
        finally:
            if not keeps_count(kind, attempt.status):
                await self._give_back(counted)

    async def _give_back(self, counted: list[tuple[Limit, str]]) -> None:
        for limit, key in counted:
            try:
                await self._cache.count(key, by=-1, ttl=limit.window)
            except CacheUnavailable as exc:
                _log.warning("abuse limit not given back, cache unavailable: %s", exc)
                return
