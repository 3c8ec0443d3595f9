"""The wallet outbox relay: a background task in every users worker process.

Registration writes the user with ``wallet_pending`` set (one atomic insert), then asks payments
for the wallet and clears the flag. If the process dies in between, or payments is down, the flag
stays; this relay finds such users and retries (payments' ``CreateWallet`` is idempotent on the
user id, so a duplicate delivery from two processes is harmless) until payments acknowledges.
"""

from __future__ import annotations

import logging

import trio

from .._service import Runtime
from ._commands import deliver_wallet
from ._deps import UsersDeps

__all__ = ["relay_wallets", "relay_once", "POLL_INTERVAL", "MAX_BACKOFF"]

log = logging.getLogger("workup.users")

POLL_INTERVAL = 1.0   # seconds between scans when the last one delivered everything
MAX_BACKOFF = 15.0    # ceiling of the wait after failed deliveries
_BATCH = 100


async def relay_once(rt: Runtime[UsersDeps]) -> tuple[int, int]:
    """One scan of the outbox: (delivered, failed)."""
    delivered = failed = 0
    for user in await rt.deps.store.pending_wallets(_BATCH):
        if await deliver_wallet(rt, user, timeout=5.0):
            delivered += 1
        else:
            failed += 1
            break  # payments is unhappy: back off instead of hammering it with the rest
    return delivered, failed


def next_wait(failed: bool, previous: float) -> float:
    """Poll steadily while deliveries succeed; double the wait (bounded) while they fail."""
    return min(MAX_BACKOFF, max(POLL_INTERVAL, previous * 2)) if failed else POLL_INTERVAL


async def relay_wallets(rt: Runtime[UsersDeps]) -> None:
    wait = POLL_INTERVAL
    while True:
        try:
            _delivered, failed = await relay_once(rt)
        except Exception:  # a store hiccup must not kill the relay; it is retried on the next scan
            log.exception("wallet relay scan failed")
            failed = 1
        wait = next_wait(bool(failed), wait)
        await trio.sleep(wait)
