"""From an ``Authorization`` header (or a bare token) to a verified :class:`Caller`."""

from __future__ import annotations

from ..transport.envelope import Caller
from ..problems import ProblemError
from ._state import Gateway
from ._tokens import InvalidToken

__all__ = ["ANONYMOUS", "authenticate", "caller_for_token", "bearer_token"]

ANONYMOUS = Caller(None, None)


def bearer_token(header: str) -> str:
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ProblemError(401, "the Authorization header must be 'Bearer <token>'")
    return token


async def caller_for_token(token: str, gw: Gateway) -> Caller:
    """401 for a bad token or a closed account (``_revocations.py`` says what it asks)."""
    try:
        claims = gw.tokens.verify(token)
    except InvalidToken as exc:
        raise ProblemError(401, str(exc)) from None
    if await gw.revocations.is_closed(claims):
        raise ProblemError(401, "this account is closed")
    return claims.caller


async def authenticate(header: str | None, gw: Gateway) -> Caller:
    """No header: anonymous. Anything else must be a valid bearer token."""
    if header is None:
        return ANONYMOUS
    return await caller_for_token(bearer_token(header), gw)
