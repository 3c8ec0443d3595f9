"""From an ``Authorization`` header (or a bare token) to a verified :class:`Caller`."""

from __future__ import annotations

import logging

from ..cache import CacheUnavailable
from ..transport.envelope import Caller
from ..problems import ProblemError
from ._state import Gateway
from ._tokens import InvalidToken

__all__ = ["ANONYMOUS", "authenticate", "caller_for_token", "bearer_token"]

ANONYMOUS = Caller(None, None)
_log = logging.getLogger("workup.gateway")


def bearer_token(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ProblemError(401, "the Authorization header must be 'Bearer <token>'")
    return token


async def caller_for_token(token: str, gw: Gateway) -> Caller:
    """401 for a bad token or a closed account (the check is skipped, logged, while the cache
    cannot be reached)."""
    try:
        claims = gw.tokens.verify(token)
    except InvalidToken as exc:
        raise ProblemError(401, str(exc)) from None
    try:
        closed = await gw.revocations.is_closed(claims.sub)
    except CacheUnavailable as exc:
        # availability first: a cache outage must not take the whole API down; the closing
        # gateway still refuses at once, and login of a closed account is refused by users
        _log.warning("closed-account check skipped, cache unavailable: %s", exc)
        closed = False
    if closed:
        raise ProblemError(401, "this account is closed")
    return claims.caller


async def authenticate(header: str | None, gw: Gateway) -> Caller:
    """No header: anonymous. Anything else must be a valid bearer token."""
    if header is None:
        return ANONYMOUS
    return await caller_for_token(bearer_token(header), gw)
