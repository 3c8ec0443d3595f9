"""Closed-account check for every authenticated request: the cache answers fast, the users store
is the truth.

The users service sets the flag :func:`workup.cache.closed_account_key` (no TTL) after it
committed a close. A flag is only proof while the cache has kept it, so the flag's absence is
believed only for a token issued during the cache's current life (:class:`~workup.cache.CacheLife`:
a restarted Redis starts a new one, empty). For an older token, or while the cache cannot be
asked, the users service is asked (:class:`AccountCheck`: ``users.GetMe`` as the token's caller,
401 when the account is closed) and its "open" is remembered for the rest of that cache life,
since a close after it writes its flag into that life. Only when neither can answer is the
account taken as open (logged), so that the two failing together do not refuse every token.

In front of both, an in-process memo: a "closed" answer is kept for good, an "open" answer for
``ttl`` seconds, and the cache's life is re-read at most every ``ttl`` seconds. So another gateway
refuses a closed account's tokens within ``ttl`` of the flag being written, and within ``2 * ttl``
of the cache coming back empty; the gateway that forwarded the ``DELETE /me`` is told at once
(:meth:`Revocations.mark_closed`). ``docs/gateway.md`` ("Closed accounts") gives the bounds.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from typing import Callable, Protocol, TypeVar

from ..cache import Cache, CacheLife, CacheUnavailable, closed_account_key
from ..messages.users import GetMe
from ..transport import DeadlineExceeded, NoResponder, RpcClient
from ..transport.envelope import Caller
from ._tokens import Claims

__all__ = ["Revocations", "AccountCheck", "AccountCheckFailed", "UsersAccountCheck", "trusts_absent_flag"]

T = TypeVar("T")
_log = logging.getLogger("workup.gateway")


class AccountCheckFailed(Exception):
    """The users service could not say whether the account is open."""


class AccountCheck(Protocol):
    async def is_open(self, caller: Caller) -> bool:
        """Whether the store holds ``caller``'s account open, with that role; raises
        :class:`AccountCheckFailed` when it cannot be told."""
        ...


class UsersAccountCheck:
    """:class:`AccountCheck` through the users service: ``users.GetMe`` as the token's caller
    answers 200 for an open account and 401 for a closed or unknown one (``current_user``)."""

    def __init__(self, transport: RpcClient, *, timeout: float = 2.0) -> None:
        self._transport = transport
        self._timeout = timeout

    async def is_open(self, caller: Caller) -> bool:
        try:
            reply = await self._transport.call("users.GetMe", GetMe(), caller=caller, timeout=self._timeout)
        except (DeadlineExceeded, NoResponder) as exc:
            raise AccountCheckFailed(f"the users service did not answer ({type(exc).__name__})") from None
        if reply.status == 200:
            return True
        if reply.status == 401:
            return False
        raise AccountCheckFailed(f"the users service answered {reply.status}")


def trusts_absent_flag(issued_at: float, life: CacheLife) -> bool:
    """May a missing closed-account flag be believed for a token issued at ``issued_at``? Only
    when the cache has lived since then: a close before the token's issue cannot be (the login is
    refused), and one after it wrote its flag into this life. ``iat`` is whole seconds, rounded
    down: a token from the second the cache started in is not believed (users is asked once)."""
    return issued_at >= life.started_at


class Revocations:
    def __init__(self, cache: Cache, accounts: AccountCheck, *, ttl: float = 1.0, size: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cache = cache
        self._accounts = accounts
        self._ttl = ttl
        self._size = size
        self._clock = clock
        self._open_until: OrderedDict[str, float] = OrderedDict()
        self._closed: set[str] = set()
        self._confirmed: OrderedDict[str, str] = OrderedDict()   # user -> id of the life users said "open" in
        self._life: CacheLife | None = None
        self._life_until = -math.inf

    async def is_closed(self, claims: Claims) -> bool:
        user_id = claims.sub
        if user_id in self._closed:
            return True
        now = self._clock()
        until = self._open_until.get(user_id)
        if until is not None and until > now:
            return False
        if await self._check(claims, now):
            self.mark_closed(user_id)
            return True
        _remember(self._open_until, user_id, now + self._ttl, self._size)
        return False

    async def _check(self, claims: Claims, now: float) -> bool:
        try:
            life = await self._current_life(now)
            flag = await self._cache.get_flag(closed_account_key(claims.sub))
        except CacheUnavailable:
            # availability without the cache: the truth is one cheap call away
            return await self._closed_in_store(claims) is True
        if flag is not None:
            return True
        if trusts_absent_flag(claims.iat, life) or self._confirmed.get(claims.sub) == life.id:
            return False
        closed = await self._closed_in_store(claims)
        if closed is False:
            _remember(self._confirmed, claims.sub, life.id, self._size)
        return closed is True

    async def _closed_in_store(self, claims: Claims) -> bool | None:
        """The users service's answer, or ``None`` when it cannot give one: then the account is
        taken as open (logged) for ``ttl``, as before this check existed; refusing every token
        while both the cache and the users service are away would take the whole API down."""
        try:
            return not await self._accounts.is_open(claims.caller)
        except AccountCheckFailed as exc:
            _log.warning("closed-account check of %s skipped: %s", claims.sub, exc)
            return None

    async def _current_life(self, now: float) -> CacheLife:
        if self._life is None or now >= self._life_until:
            self._life = await self._cache.life()
            self._life_until = now + self._ttl
        return self._life

    def mark_closed(self, user_id: str) -> None:
        self._closed.add(user_id)
        self._open_until.pop(user_id, None)


def _remember(memo: OrderedDict[str, T], key: str, value: T, size: int) -> None:
    memo[key] = value
    memo.move_to_end(key)
    if len(memo) > size:
        memo.popitem(last=False)
