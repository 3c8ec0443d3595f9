"""The outbox relay: a background task in every users worker process.

Some writes must be followed by a step elsewhere, even if the process dies right after the write:
- registration inserts the user with ``wallet_pending`` (one atomic insert), then asks payments
  for the wallet (``CreateWallet``, idempotent on the user id) and clears the flag;
- closing an account sets ``closed`` and ``revoke_pending`` in one update, then writes the
  gateway's closed-account cache flag (idempotent) and clears ``revoke_pending``.
The handler tries the step at once; when it fails (or never happens), this relay finds the flagged
users and retries until it succeeds. Duplicates (handler and relay, or two processes) are harmless.
"""

from __future__ import annotations

import logging
from typing import Any, Awaitable, Callable

import trio

from ...runtime.service import Runtime
from .commands import deliver_wallet, revoke_tokens
from .deps import UsersDeps
from .store import OutboxFlag

__all__ = ["relay_outbox", "relay_once", "next_wait", "POLL_INTERVAL", "MAX_BACKOFF"]

log = logging.getLogger("workup.users")

POLL_INTERVAL = 1.0   # seconds between scans when the last one delivered everything
MAX_BACKOFF = 15.0    # ceiling of the wait after failed deliveries
_BATCH = 100


async def _wallet(rt: Runtime[UsersDeps], user: Any) -> bool:
    return await deliver_wallet(rt, user, timeout=5.0)


async def _revocation(rt: Runtime[UsersDeps], user: Any) -> bool:
    return await revoke_tokens(rt, user.id)


_STEPS: dict[OutboxFlag, Callable[[Runtime[UsersDeps], Any], Awaitable[bool]]] = {
    "wallet_pending": _wallet,
    "revoke_pending": _revocation,
}


async def relay_once(rt: Runtime[UsersDeps]) -> tuple[int, int]:
    """One scan of every outbox flag: (delivered, failed). A failure stops that flag's batch (its
    peer is unhappy: back off instead of hammering it with the rest)."""
    delivered = failed = 0
    for flag, step in _STEPS.items():
        for user in await rt.deps.store.pending(flag, _BATCH):
            if await step(rt, user):
                delivered += 1
            else:
                failed += 1
                break
    return delivered, failed


def next_wait(failed: bool, previous: float) -> float:
    """Poll steadily while deliveries succeed; double the wait (bounded) while they fail."""
    return min(MAX_BACKOFF, max(POLL_INTERVAL, previous * 2)) if failed else POLL_INTERVAL


async def relay_outbox(rt: Runtime[UsersDeps]) -> None:
    wait = POLL_INTERVAL
    while True:
        try:
            _delivered, failed = await relay_once(rt)
        except Exception:  # a store hiccup must not kill the relay; the next scan retries
            log.exception("outbox relay scan failed")
            failed = 1
        wait = next_wait(bool(failed), wait)
        await trio.sleep(wait)
