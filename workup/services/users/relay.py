"""The users outbox: steps that must follow a committed write even if the process dies right after it.

- registration inserts the user with ``wallet_pending`` (one atomic insert), then asks payments
  for the wallet (``CreateWallet``, idempotent on the user id) and clears the flag;
- closing an account sets ``closed`` and ``revoke_pending`` in one update, then writes the
  gateway's closed-account cache flag (idempotent) and clears ``revoke_pending``.

The handler tries the step at once; when it fails (or never happens), :data:`RELAY` finds the
flagged users and retries until it succeeds. Duplicates (handler and relay, or two processes) are
harmless. The loop and its retry policy are :mod:`workup.runtime.outbox`'s; the intents stay flags
on the user document because the flag is written in the same atomic document write as the change
it follows (a separate outbox collection would need multi-document transactions, which FerretDB
and the SQLite adapter's single-row writes do not give for free). :class:`Flags` shows them to
the relay as rows: kind = the flag, item = the user id.
"""

from __future__ import annotations

import logging

from ...runtime.outbox import Intent, Relay, RetryLater, RowOutbox
from ...runtime.service import Runtime
from .commands import deliver_wallet, revoke_tokens
from .deps import UsersDeps
from .store import OUTBOX_FLAGS, OutboxFlag, UserStore

__all__ = ["RELAY", "Flags"]

log = logging.getLogger("workup.users")


class Flags:
    """The users' outbox flags as intent rows (for :class:`~workup.runtime.outbox.RowOutbox`)."""

    def __init__(self, store: UserStore) -> None:
        self.store = store

    async def pending(self, kind: str, limit: int = 100) -> list[tuple[str, int]]:
        return [(user.id, 0) for user in await self.store.pending(_flag(kind), limit)]

    async def done(self, kind: str, item: str, created_ms: int = 0) -> None:
        await self.store.clear_pending(_flag(kind), item)


def _flag(kind: str) -> OutboxFlag:
    if kind not in OUTBOX_FLAGS:
        raise ValueError(f"not an outbox flag: {kind!r}")
    return kind


RELAY: Relay[UsersDeps] = Relay(outbox=lambda deps: RowOutbox(Flags(deps.store)), log=log)


@RELAY.step("wallet_pending")
async def _wallet(rt: Runtime[UsersDeps], intent: Intent) -> None:
    user = await rt.deps.store.get(intent.item)
    if user is not None and not await deliver_wallet(rt, user, timeout=5.0):
        raise RetryLater("payments has not acknowledged CreateWallet")


@RELAY.step("revoke_pending")
async def _revocation(rt: Runtime[UsersDeps], intent: Intent) -> None:
    if not await revoke_tokens(rt, intent.item):
        raise RetryLater("the closed-account flag is not written")
