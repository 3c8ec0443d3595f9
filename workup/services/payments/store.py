"""The payments store port: an async facade whose every method is ONE database transaction.

:class:`SqlStore` holds everything the two adapters share: it runs a transaction script of
:mod:`.ops` in a worker thread (``trio.to_thread.run_sync`` bounded by a ``CapacityLimiter``, so
the blocking driver never stalls the trio loop): one thread hop per transaction, never one per
statement. An adapter (:mod:`.postgres`, :mod:`.sqlite`) provides :meth:`SqlStore._transaction`
(connection, ``BEGIN``, commit, bounded retries of serialization/deadlock/busy failures counted
in :attr:`retries`) and the pool sizing, and may provide :meth:`SqlStore._statement`: a script of
ONE statement (a read, an outbox claim) run without ``BEGIN``/``COMMIT``, since a single
statement is atomic on its own (PostgreSQL then saves two round trips).
"""

from __future__ import annotations

import datetime as dt
import functools
from decimal import Decimal
from typing import Any, Callable, Sequence, TypeVar

import trio

from ...messages.payments import CreatePaymentRequest, PaymentRequest, PaymentTransaction, WalletTransaction
from ...ids import utc_now
from ...problems import ProblemError, unavailable
from . import ops as _ops
from .ops import Audit, Changed, IdemKey, OutboxItem, Outcome, Tx, Written

__all__ = ["SqlStore", "SqlTx", "Dialect", "MAX_TX_ATTEMPTS", "contended"]

T = TypeVar("T")

MAX_TX_ATTEMPTS = 8     # a transaction that keeps hitting deadlocks/serialization failures gives up


def contended() -> ProblemError:
    """The answer when a transaction gives up: nothing was written, the caller may retry."""
    return unavailable("too many concurrent changes to the same rows; nothing was changed, retry")


class Dialect:
    """Rewrites the neutral SQL of :mod:`.ops` for one driver (memoised per statement)."""

    def __init__(self, placeholder: str, lock: str, skip_locked: str) -> None:
        self._subs = (("?", placeholder), ("{lock}", lock), ("{skip_locked}", skip_locked))

    @functools.lru_cache(maxsize=512)
    def sql(self, text: str) -> str:
        for old, new in self._subs:
            text = text.replace(old, new)
        return text


class SqlTx:
    """The query half of :class:`.ops.Tx` over anything with a DB-API ``execute`` (a psycopg
    cursor, an sqlite3 connection); adapters add the value conversions."""

    def __init__(self, target: Any, dialect: Dialect) -> None:
        self._target = target
        self._dialect = dialect

    def one(self, sql: str, *params: Any) -> tuple | None:
        return self._target.execute(self._dialect.sql(sql), params).fetchone()

    def all(self, sql: str, *params: Any) -> list[tuple]:
        return self._target.execute(self._dialect.sql(sql), params).fetchall()

    def run(self, sql: str, *params: Any) -> int:
        return self._target.execute(self._dialect.sql(sql), params).rowcount

    def queue(self, sql: str, *params: Any) -> None:
        """A write whose result nobody reads: a pipelining adapter sends it with what follows
        (its error, if any, still aborts the transaction before the commit)."""
        self._target.execute(self._dialect.sql(sql), params)

    def send(self, sql: str, *params: Any) -> Callable[[], list[tuple]]:
        """A statement whose rows are read when the answer is called: before the commit (a
        pipelining adapter sends the statements sent before that read together: one round trip),
        or after it (the rows then travel with the ``COMMIT``). Here they are read at once."""
        rows = self._target.execute(self._dialect.sql(sql), params).fetchall()
        return lambda: rows


class SqlStore:
    """Shared facade; subclasses implement :meth:`_transaction`, pool sizing and :meth:`close`."""

    def __init__(self, threads: int) -> None:
        self._limiter = trio.CapacityLimiter(max(1, threads))
        self.retries = 0       # serialization/deadlock/busy retries, for the benchmark

    # --- adapter hooks ---------------------------------------------------------------------
    def _transaction(self, script: Callable[..., T], args: tuple) -> T:
        raise NotImplementedError

    def _statement(self, script: Callable[..., T], args: tuple) -> T:
        """Run a script of ONE statement; by default as a transaction like any other."""
        return self._transaction(script, args)

    def pool_size(self) -> int:
        raise NotImplementedError

    async def resize_pool(self, size: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    # --- plumbing ---------------------------------------------------------------------------
    async def _run(self, script: Callable[..., T], *args: Any) -> T:
        return await trio.to_thread.run_sync(self._transaction, script, args, limiter=self._limiter)

    async def _single(self, script: Callable[..., T], *args: Any) -> T:
        """:meth:`_run` for a script that executes ONE statement (no ``BEGIN``/``COMMIT`` needed)."""
        return await trio.to_thread.run_sync(self._statement, script, args, limiter=self._limiter)

    def _set_threads(self, n: int) -> None:
        self._limiter.total_tokens = max(1, n)

    # --- the port ---------------------------------------------------------------------------
    async def ensure_wallet(self, user_id: str, role: str | None) -> Decimal:
        return await self._run(_ensure_and_read, user_id, role)

    async def balance(self, user_id: str) -> Decimal:
        return await self._single(_ops.balance, user_id)

    async def wallet(self, user_id: str) -> tuple[Decimal, int]:
        return await self._single(_ops.wallet, user_id)

    async def deposit(self, user_id: str, amount: Decimal, description: str | None,
                      idem: IdemKey | None = None) -> Outcome:
        return await self._run(_ops.deposit, user_id, amount, description, idem)

    async def withdraw(self, user_id: str, amount: Decimal, description: str | None,
                       idem: IdemKey | None = None) -> Outcome:
        return await self._run(_ops.withdraw, user_id, amount, description, idem)

    async def close_wallet(self, user_id: str) -> Changed | None:
        return await self._run(_ops.close_wallet, user_id)

    async def wallet_transactions(self, user_id: str) -> list[WalletTransaction]:
        return await self._single(_ops.wallet_transactions, user_id)

    async def wallet_transaction(self, user_id: str, id: str) -> WalletTransaction | None:
        return await self._single(_ops.wallet_transaction, user_id, id)

    async def requests_of(self, user_id: str, side: str) -> list[PaymentRequest]:
        return await self._single(_ops.requests_of, user_id, side)

    async def transactions_of(self, user_id: str, side: str) -> list[PaymentTransaction]:
        return await self._single(_ops.transactions_of, user_id, side)

    async def get_request(self, id: str) -> tuple[PaymentRequest, int] | None:
        return await self._single(_ops.get_request, id)

    async def create_request(self, cmd: CreatePaymentRequest) -> tuple[str, bool]:
        request_id, written = await self.open_request(cmd)
        return request_id, written is not None

    async def open_request(self, cmd: CreatePaymentRequest, hold: float = 0.0) -> tuple[str, Written | None]:
        """:meth:`create_request` with the outbox rows it wrote (``None``: the milestone had its
        request already), held ``hold`` seconds for their writer (``ops._enqueue``)."""
        return await self._run(_ops.create_request, cmd, hold)

    async def cancel_contract_requests(self, contract_id: str) -> list[Changed]:
        return await self._run(_ops.cancel_contract_requests, contract_id)

    async def pay(self, request_id: str, payer_id: str, idem: IdemKey | None = None, hold: float = 0.0) -> Outcome:
        """``hold``: as :meth:`open_request`'s."""
        return await self._run(_ops.pay, request_id, payer_id, idem, hold)

    async def remember(self, idem: IdemKey, status: int, body: bytes) -> Outcome:
        return await self._run(_ops.remember, idem, status, body)

    async def claim_outbox(self, limit: int = 20, lease: float = 30.0, kind: str | None = None) -> list[OutboxItem]:
        return await self._single(_ops.claim_outbox, limit, lease, kind)

    async def outbox_done(self, seq: int) -> None:
        await self._single(_ops.outbox_forget, [seq])

    async def outbox_forget(self, seqs: Sequence[int]) -> None:
        await self._single(_ops.outbox_forget, seqs)

    async def outbox_retry(self, seq: int, delay: float, error: str) -> None:
        await self._single(_ops.outbox_retry, seq, delay, error)

    async def outbox_dead(self, seq: int, error: str) -> None:
        await self._single(_ops.outbox_dead, seq, error)

    async def purge_idempotency(self, older_than: dt.timedelta) -> int:
        return await self._single(_ops.purge_idempotency, utc_now() - older_than)

    async def audit(self) -> Audit:
        return await self._run(_ops.audit)


def _ensure_and_read(tx: Tx, user_id: str, role: str | None) -> Decimal:
    _ops.ensure_wallet(tx, user_id, role, utc_now())
    return _ops.balance(tx, user_id)
