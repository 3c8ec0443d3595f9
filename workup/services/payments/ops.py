"""The payments transaction scripts, written once for both stores.

Each public function runs inside ONE database transaction opened by the adapter (``BEGIN`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite) and talks to it through :class:`Tx`. SQL uses ``?``
placeholders and ``{lock}`` (``FOR UPDATE`` where the dialect has it), which the adapter rewrites.

Lock order, the same in every script so that two transactions never wait on each other in a
cycle: idempotency key → payment requests (by id) → wallets (by user id) → outbox.
Checks come before writes, so a script that raises :class:`ProblemError` has written nothing.

Round trips: a write whose result the script does not read goes through :meth:`Tx.queue`, which
PostgreSQL's adapter pipelines with the commit, and the statements a script sends with
:meth:`Tx.send` travel together until one of their answers is read: the effect's first statements
go with the idempotency key's insert (``_idempotent``'s ``ahead``: the request and wallet locks of
a payment, a deposit's guarded update, which applies only if that insert was this transaction's),
and the outbox insert, whose row numbers its handler reads after the commit, with the ``COMMIT``.
Versions of rows the script holds locked are known without ``RETURNING`` (the one read under the
lock, plus one). So a payment or a deposit is two round trips (``BEGIN`` + key + the effect's first
statements, the writes + ``COMMIT``). Scripts of
ONE statement (reads, outbox claims) run without a transaction (``SqlStore._single``).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Callable, Protocol, Sequence

import msgspec

from ...ids import new_id, utc_now
from ...transport.envelope import encode_json
from ...messages.contracts import MarkMilestonePaid
from ...messages.payments import (CreatePaymentRequest, PaymentRequest, PaymentTransaction, PayResult,
    WalletBalance, WalletTransaction)
from ...problems import ProblemError, conflict, forbidden, not_found

__all__ = [
    "Tx", "IdemKey", "Outcome", "Changed", "OutboxItem", "Written", "Audit", "MAX_BALANCE",
    "ensure_wallet", "balance", "wallet", "deposit", "withdraw", "wallet_transactions", "wallet_transaction",
    "requests_of", "transactions_of", "get_request", "create_request", "cancel_contract_requests",
    "pay", "remember", "claim_outbox", "outbox_forget", "outbox_retry", "outbox_dead", "purge_idempotency", "audit",
]

# NUMERIC(14,2): the largest balance a wallet can hold; a deposit or credit beyond it is refused.
MAX_BALANCE = Decimal("999999999999.99")


class Tx(Protocol):
    """One open transaction of an adapter; values in and out are Python's (Decimal, datetime)."""

    def one(self, sql: str, *params: Any) -> tuple | None: ...
    def all(self, sql: str, *params: Any) -> list[tuple]: ...
    def run(self, sql: str, *params: Any) -> int: ...
    def queue(self, sql: str, *params: Any) -> None: ...   # a write whose result is not read
    def send(self, sql: str, *params: Any) -> Callable[[], list[tuple]]: ...   # rows read when called
    def money(self, value: Decimal) -> Any: ...       # Python → column
    def decimal(self, value: Any) -> Decimal: ...     # column → Python
    def ts(self, value: dt.datetime) -> Any: ...
    def datetime(self, value: Any) -> dt.datetime: ...


class IdemKey(msgspec.Struct, frozen=True):
    user_id: str
    route: str
    key: str


class Changed(msgspec.Struct, frozen=True):
    """A row a command changed, for cache invalidation: ``entity`` "wallet" (id = user id) or
    "request"; its new ``version``; the users whose cached reads of it must go."""
    entity: str
    id: str
    version: int
    readers: tuple[str, ...]
    balance: Decimal | None = None      # a wallet's new balance


class OutboxItem(msgspec.Struct, frozen=True):
    seq: int
    kind: str          # "call" | "event"
    name: str          # "contracts.MarkMilestonePaid" | "payment.paid"
    payload: bytes     # JSON
    attempts: int


class Written:
    """The outbox rows one transaction wrote, for its handler to deliver: what they carry, known
    at once, and their ``seq``s, read from the insert's ``RETURNING`` once the transaction
    committed (:meth:`Tx.send`). Call :meth:`items` only then."""

    __slots__ = ("_rows", "_seqs")

    def __init__(self, rows: Sequence[tuple[str, str, bytes]], seqs: Callable[[], list[tuple]]) -> None:
        self._rows = tuple(rows)
        self._seqs = seqs

    def items(self) -> list[OutboxItem]:
        # one INSERT numbers its rows in the order of its VALUES
        seqs = sorted(int(r[0]) for r in self._seqs())
        return [OutboxItem(seq=seq, kind=kind, name=name, payload=payload, attempts=0)
                for seq, (kind, name, payload) in zip(seqs, self._rows, strict=True)]


class Outcome(msgspec.Struct, frozen=True):
    """The answer of an idempotent command: what the caller gets, now and on every retry."""
    status: int
    body: bytes                           # JSON: the result, or a Problem when status >= 400
    replayed: bool = False
    changed: tuple[Changed, ...] = ()
    outbox: Written | None = None         # the outbox rows written, for the handler to deliver


class Audit(msgspec.Struct, frozen=True):
    """Money conservation: ``balances == deposits - withdrawals`` must always hold."""
    balances: Decimal
    deposits: Decimal
    withdrawals: Decimal


class _Effect(msgspec.Struct, frozen=True):
    result: Any
    changed: tuple[Changed, ...] = ()
    outbox: Written | None = None


# --- idempotency --------------------------------------------------------------------------------

def _idempotent(tx: Tx, idem: IdemKey | None, at: dt.datetime, effect: Callable[[], _Effect],
                ahead: Callable[[IdemKey | None], None] | None = None) -> Outcome:
    """Run ``effect`` once per key. The key row is inserted FIRST, in the same transaction as the
    effect: a concurrent duplicate blocks on the primary key until this transaction ends, then
    finds the stored answer; if this transaction rolls back, the key is free again. ``ahead``
    sends the effect's first statements right after the insert (:meth:`Tx.send`: one round trip
    for all); one that writes must apply only if the insert was this transaction's (:func:`_fresh`)."""
    first = None if idem is None else _remember(tx, idem, 0, b"", at)    # status 0: in progress, set below
    if ahead is not None:
        ahead(idem)
    if first is not None and (answer := first()).replayed:
        return answer
    try:
        done = effect()
        outcome = Outcome(200, encode_json(done.result), changed=done.changed, outbox=done.outbox)
    except ProblemError as exc:
        outcome = Outcome(exc.status, encode_json(exc.problem))
    if idem is not None:
        tx.queue("UPDATE idempotency_keys SET status = ?, body = ? WHERE user_id = ? AND route = ? AND key = ?",
               outcome.status, outcome.body, idem.user_id, idem.route, idem.key)
    return outcome


def remember(tx: Tx, idem: IdemKey, status: int, body: bytes, at: dt.datetime | None = None) -> Outcome:
    """Make (status, body) the key's first answer unless it has one; returns the first answer
    (``replayed`` when it was already there)."""
    return _remember(tx, idem, status, body, at)()


def _remember(tx: Tx, idem: IdemKey, status: int, body: bytes, at: dt.datetime | None) -> Callable[[], Outcome]:
    """:func:`remember` with its insert sent now and its answer read when called."""
    fresh = tx.send("INSERT INTO idempotency_keys (user_id, route, key, status, body, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING status",
                    idem.user_id, idem.route, idem.key, status, body, tx.ts(at or utc_now()))

    def first() -> Outcome:
        if fresh():
            return Outcome(status=status, body=body)
        row = tx.one("SELECT status, body FROM idempotency_keys WHERE user_id = ? AND route = ? AND key = ?",
                     idem.user_id, idem.route, idem.key)
        assert row is not None
        return Outcome(status=int(row[0]), body=bytes(row[1]), replayed=True)
    return first


def _fresh(idem: IdemKey | None) -> tuple[str, tuple[str, ...]]:
    """A condition (and its parameters) true only in the transaction whose insert of ``idem``'s
    row is in progress: status 0 is never committed (``_idempotent`` stores the answer before its
    commit, ``remember``'s callers a 4xx), and another transaction's uncommitted row is invisible."""
    if idem is None:
        return "", ()
    return (" AND EXISTS (SELECT 1 FROM idempotency_keys WHERE user_id = ? AND route = ? AND key = ? "
            "AND status = 0)", (idem.user_id, idem.route, idem.key))


def purge_idempotency(tx: Tx, before: dt.datetime) -> int:
    return tx.run("DELETE FROM idempotency_keys WHERE created_at < ?", tx.ts(before))


# --- wallets ------------------------------------------------------------------------------------

def ensure_wallet(tx: Tx, user_id: str, role: str | None, at: dt.datetime) -> None:
    tx.run("INSERT INTO wallets (user_id, role, balance, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
           "ON CONFLICT (user_id) DO NOTHING", user_id, role, tx.money(Decimal(0)), tx.ts(at), tx.ts(at))


def wallet(tx: Tx, user_id: str) -> tuple[Decimal, int]:
    """A user's balance and its version; a user without a wallet row has 0 at version 0 (wallets
    are also created on first use, so a lost CreateWallet costs nothing)."""
    row = tx.one("SELECT balance, version FROM wallets WHERE user_id = ?", user_id)
    return (tx.decimal(row[0]), int(row[1])) if row else (Decimal("0.00"), 0)


def balance(tx: Tx, user_id: str) -> Decimal:
    return wallet(tx, user_id)[0]


def _locked_balances(tx: Tx, user_ids: Sequence[str], at: dt.datetime,
                     sent: list[tuple] | None = None) -> dict[str, tuple[Decimal, int]]:
    """Lock the wallets in user-id order and read their balances and versions (``sent``: the rows
    of that lock, already asked); wallets that do not exist yet are created first (only then: the
    common case costs one statement). A closed wallet is 409."""
    ids = sorted(set(user_ids))
    marks = ", ".join("?" for _ in ids)
    for attempt in range(2):
        rows = sent if attempt == 0 and sent is not None else tx.all(
            f"SELECT user_id, balance, closed_at, version FROM wallets WHERE user_id IN ({marks}) "
            "ORDER BY user_id{lock}", *ids)
        if len(rows) == len(ids):
            for r in rows:
                if r[2] is not None:
                    raise conflict(f"the wallet of account {r[0]} is closed")
            return {r[0]: (tx.decimal(r[1]), int(r[3])) for r in rows}
        for user_id in sorted(set(ids) - {r[0] for r in rows}):
            ensure_wallet(tx, user_id, None, at)
    raise AssertionError("wallets vanished while locked")


def _set_balances(tx: Tx, balances: dict[str, tuple[Decimal, int]], at: dt.datetime) -> list[Changed]:
    """Write the new balances of wallets this transaction holds locked, ``{user: (balance,
    version read under the lock)}``, in ONE statement; each becomes ``version + 1``."""
    users = sorted(balances)
    cases = " ".join("WHEN ? THEN ?" for _ in users)
    tx.queue(f"UPDATE wallets SET balance = CASE user_id {cases} END, updated_at = ?, version = version + 1 "
             f"WHERE user_id IN ({', '.join('?' for _ in users)})",
             *[v for u in users for v in (u, tx.money(balances[u][0]))], tx.ts(at), *users)
    return [Changed("wallet", u, balances[u][1] + 1, (u,)) for u in users]


def _set_status(tx: Tx, req: PaymentRequest, version: int, status: str, at: dt.datetime) -> Changed:
    """Write a request this transaction holds locked at ``version`` (so it becomes ``version + 1``)."""
    tx.queue("UPDATE payment_requests SET status = ?, updated_at = ?, version = ? WHERE id = ?",
             status, tx.ts(at), version + 1, req.id)
    return Changed("request", req.id, version + 1, (req.client_id, req.freelancer_id))


def _wallet_entries(tx: Tx, at: dt.datetime, *entries: tuple[str, Decimal, str, str | None, str | None]) -> None:
    """Insert wallet transactions ``(user_id, amount, CREDIT|DEBIT, description, payment id)``
    in one statement."""
    marks = ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in entries)
    params = [v for user_id, amount, kind, description, payment_id in entries
              for v in (new_id(), user_id, tx.money(amount), kind, description, payment_id, tx.ts(at))]
    tx.queue("INSERT INTO wallet_transactions (id, user_id, amount, transaction_type, description, "
             f"payment_transaction_id, created_at) VALUES {marks}", *params)


def _credit_check(old: Decimal, amount: Decimal) -> Decimal:
    new = old + amount
    if new > MAX_BALANCE:
        raise conflict(f"the balance would exceed the maximum of {MAX_BALANCE}")
    return new


def _send_add(tx: Tx, user_id: str, delta: Decimal, guard: str, bound: Decimal, at: dt.datetime,
              idem: IdemKey | None = None) -> Callable[[], list[tuple]]:
    """The statement of :func:`_add`, sent; with ``idem``, it applies only if this transaction
    holds that key's fresh row (:func:`_fresh`), so it may go with the key's insert."""
    fresh, params = _fresh(idem)
    return tx.send(f"UPDATE wallets SET balance = balance + ?, updated_at = ?, version = version + 1 "
                   f"WHERE user_id = ? AND closed_at IS NULL AND balance {guard} ?{fresh} RETURNING balance, version",
                   tx.money(delta), tx.ts(at), user_id, tx.money(bound), *params)


def _add(tx: Tx, user_id: str, delta: Decimal, guard: str, bound: Decimal, at: dt.datetime,
         sent: Callable[[], list[tuple]] | None = None) -> Changed | None:
    """``balance += delta`` when ``balance <guard> bound`` holds, in ONE statement: it locks the
    row, re-checks the guard on the newest version (READ COMMITTED) and writes, so the row lock is
    held only for this, one insert and the commit. ``None`` when the guard fails; 409 when the
    wallet is closed. A wallet that does not exist yet is created (only then: the common case
    costs one statement). ``sent``: that statement, already sent (:func:`_send_add`)."""
    for attempt in range(2):
        rows = (sent if attempt == 0 and sent is not None else _send_add(tx, user_id, delta, guard, bound, at))()
        row = rows[0] if rows else None
        if row is not None:
            return Changed("wallet", user_id, int(row[1]), (user_id,), tx.decimal(row[0]))
        found = tx.one("SELECT closed_at FROM wallets WHERE user_id = ?", user_id)
        if found is not None:
            if found[0] is not None:
                raise conflict("the wallet is closed")
            return None
        ensure_wallet(tx, user_id, None, at)
    return None


def close_wallet(tx: Tx, user_id: str) -> Changed | None:
    """Close the wallet of an account being closed, if its balance is zero (else 409), in one
    transaction under the row lock: a deposit or payment racing with the close either lands first
    (and the close is refused) or finds the wallet closed. Idempotent (``None`` when already
    closed); a wallet not created yet is created closed."""
    at = utc_now()
    ensure_wallet(tx, user_id, None, at)
    row = tx.one("SELECT balance, closed_at FROM wallets WHERE user_id = ?{lock}", user_id)
    assert row is not None
    balance = tx.decimal(row[0])
    if balance != 0:
        raise conflict(f"the wallet balance is {balance}, not zero")
    if row[1] is not None:
        return None
    done = tx.one("UPDATE wallets SET closed_at = ?, updated_at = ?, version = version + 1 WHERE user_id = ? "
                  "RETURNING version", tx.ts(at), tx.ts(at), user_id)
    assert done is not None
    return Changed("wallet", user_id, int(done[0]), (user_id,))


def deposit(tx: Tx, user_id: str, amount: Decimal, description: str | None, idem: IdemKey | None) -> Outcome:
    return _move(tx, user_id, amount, "CREDIT", description, idem)


def withdraw(tx: Tx, user_id: str, amount: Decimal, description: str | None, idem: IdemKey | None) -> Outcome:
    return _move(tx, user_id, amount, "DEBIT", description, idem)


def _move(tx: Tx, user_id: str, amount: Decimal, kind: str, description: str | None,
          idem: IdemKey | None) -> Outcome:
    """A deposit (CREDIT) or withdrawal (DEBIT); its guarded update goes with the key's insert."""
    at = utc_now()
    if kind == "CREDIT":
        delta, guard, bound, refusal = amount, "<=", MAX_BALANCE - amount, f"the balance would exceed the maximum of {MAX_BALANCE}"
    else:
        delta, guard, bound, refusal = -amount, ">=", amount, "insufficient balance"
    sent: list[Callable[[], list[tuple]]] = []

    def ahead(key: IdemKey | None) -> None:
        sent.append(_send_add(tx, user_id, delta, guard, bound, at, key))

    def effect() -> _Effect:
        changed = _add(tx, user_id, delta, guard, bound, at, sent[0])
        if changed is None:
            raise conflict(refusal)
        assert changed.balance is not None  # _add's Changed always carries the new balance
        _wallet_entries(tx, at, (user_id, amount, kind, description, None))
        return _Effect(WalletBalance(balance=changed.balance), changed=(changed,))
    return _idempotent(tx, idem, at, effect, ahead)


_WT = "id, amount, transaction_type, description, payment_transaction_id, created_at"


def _wallet_tx(tx: Tx, r: tuple) -> WalletTransaction:
    return WalletTransaction(id=r[0], amount=tx.decimal(r[1]), transaction_type=r[2], description=r[3],
                             payment_transaction_id=r[4], created_at=tx.datetime(r[5]))


def wallet_transactions(tx: Tx, user_id: str) -> list[WalletTransaction]:
    rows = tx.all(f"SELECT {_WT} FROM wallet_transactions WHERE user_id = ? ORDER BY seq DESC", user_id)
    return [_wallet_tx(tx, r) for r in rows]


def wallet_transaction(tx: Tx, user_id: str, id: str) -> WalletTransaction | None:
    r = tx.one(f"SELECT {_WT} FROM wallet_transactions WHERE id = ? AND user_id = ?", id, user_id)
    return _wallet_tx(tx, r) if r else None


# --- payment requests ---------------------------------------------------------------------------

_PR = "id, client_id, freelancer_id, contract_id, milestone_id, amount, status, created_at, updated_at"
_PRV = _PR + ", version"
_PT = "pt.id, pt.payment_request_id, pt.amount, pt.status, pt.created_at"
_SIDES = {"client": "client_id", "freelancer": "freelancer_id"}


def _request(tx: Tx, r: tuple) -> PaymentRequest:
    return PaymentRequest(id=r[0], client_id=r[1], freelancer_id=r[2], contract_id=r[3], milestone_id=r[4],
                          amount=tx.decimal(r[5]), status=r[6], created_at=tx.datetime(r[7]),
                          updated_at=tx.datetime(r[8]))


def _payment_tx(tx: Tx, r: tuple) -> PaymentTransaction:
    return PaymentTransaction(id=r[0], payment_request_id=r[1], amount=tx.decimal(r[2]), status=r[3],
                              created_at=tx.datetime(r[4]))


def get_request(tx: Tx, id: str) -> tuple[PaymentRequest, int] | None:
    """The request and its version."""
    r = tx.one(f"SELECT {_PRV} FROM payment_requests WHERE id = ?", id)
    return (_request(tx, r), int(r[9])) if r else None


def requests_of(tx: Tx, user_id: str, side: str) -> list[PaymentRequest]:
    column = _SIDES[side]
    rows = tx.all(f"SELECT {_PR} FROM payment_requests WHERE {column} = ? ORDER BY seq DESC", user_id)
    return [_request(tx, r) for r in rows]


def transactions_of(tx: Tx, user_id: str, side: str) -> list[PaymentTransaction]:
    column = _SIDES[side]
    rows = tx.all(f"SELECT {_PT} FROM payment_transactions pt JOIN payment_requests pr "
                  f"ON pr.id = pt.payment_request_id WHERE pr.{column} = ? ORDER BY pt.seq DESC", user_id)
    return [_payment_tx(tx, r) for r in rows]


def _enqueue(tx: Tx, at: dt.datetime, hold: float, *items: tuple[str, str, bytes]) -> Written:
    """Outbox rows ``(kind, name, payload)``, in one statement. ``hold`` > 0: their writer delivers
    them; no relay claims them for that many seconds (``next_attempt_at``), so one that does is
    finishing the delivery of a writer that died or failed."""
    due = tx.ts(at + dt.timedelta(seconds=hold)) if hold else tx.ts(at)
    marks = ", ".join("(?, ?, ?, ?, ?)" for _ in items)
    params = [v for kind, name, payload in items for v in (kind, name, payload, due, tx.ts(at))]
    return Written(items, tx.send("INSERT INTO outbox (kind, name, payload, next_attempt_at, created_at) "
                                 f"VALUES {marks} RETURNING seq", *params))


def _event(type: str, recipient: str, request_id: str) -> tuple[str, str, bytes]:
    return "event", type, encode_json({"recipients": [recipient], "data": {"paymentRequestId": request_id}})


def create_request(tx: Tx, cmd: CreatePaymentRequest, hold: float = 0.0) -> tuple[str, Written | None]:
    """``(id, outbox rows written)``: idempotent on the milestone (a retry gets the first request's
    id, and ``None``: nothing written)."""
    at = utc_now()
    # no conflict target: with the id given, a retry's row collides on the id as well as on the
    # milestone, and either means the request exists
    row = tx.one(f"INSERT INTO payment_requests ({_PR}) VALUES (?, ?, ?, ?, ?, ?, 'PENDING', ?, ?) "
                 "ON CONFLICT DO NOTHING RETURNING id",
                 cmd.id or new_id(), cmd.client_id, cmd.freelancer_id, cmd.contract_id, cmd.milestone_id,
                 tx.money(cmd.amount), tx.ts(at), tx.ts(at))
    if row is None:
        found = tx.one("SELECT id FROM payment_requests WHERE milestone_id = ?", cmd.milestone_id)
        assert found is not None
        return found[0], None
    return row[0], _enqueue(tx, at, hold, _event("payment.requested", cmd.client_id, row[0]))


def cancel_contract_requests(tx: Tx, contract_id: str) -> list[Changed]:
    """Cancel the contract's PENDING requests (locked in id order)."""
    at = utc_now()
    rows = tx.all(f"SELECT {_PRV} FROM payment_requests WHERE contract_id = ? AND status = 'PENDING' "
                  "ORDER BY id{lock}", contract_id)
    return [_set_status(tx, _request(tx, r), int(r[9]), "CANCELLED", at) for r in rows]


def pay(tx: Tx, request_id: str, payer_id: str, idem: IdemKey | None, hold: float = 0.0) -> Outcome:
    """Debit the client, credit the freelancer, record the payment and both wallet entries, mark
    the request PAID, and queue ``contracts.MarkMilestonePaid`` + ``payment.paid``: all or nothing."""
    at = utc_now()
    sent: list[Callable[[], list[tuple]]] = []

    def ahead(key: IdemKey | None) -> None:
        # the request and its parties' wallets, locked in the global order, asked with the key
        sent.append(tx.send(f"SELECT {_PRV} FROM payment_requests WHERE id = ?{{lock}}", request_id))
        sent.append(tx.send("SELECT user_id, balance, closed_at, version FROM wallets WHERE user_id IN "
                            "(SELECT client_id FROM payment_requests WHERE id = ? "
                            "UNION SELECT freelancer_id FROM payment_requests WHERE id = ?) ORDER BY user_id{lock}",
                            request_id, request_id))

    def effect() -> _Effect:
        found = sent[0]()
        if not found:
            raise not_found("payment request")
        r = found[0]
        req = _request(tx, r)
        if req.client_id != payer_id:
            raise forbidden("only the request's client can pay it")
        if req.status == "PAID":
            raise conflict("payment request already paid")
        if req.status != "PENDING":
            raise conflict(f"payment request is {req.status.lower()}")
        locked = _locked_balances(tx, [req.client_id, req.freelancer_id], at, sent[1]())
        balances = {user_id: balance for user_id, (balance, _) in locked.items()}
        if balances[req.client_id] < req.amount:
            raise conflict("insufficient balance")
        balances[req.client_id] -= req.amount
        credited = _credit_check(balances[req.freelancer_id], req.amount)
        balances[req.freelancer_id] = credited
        changed = _set_balances(tx, {u: (balances[u], locked[u][1]) for u in balances}, at)
        payment_id = new_id()
        tx.queue("INSERT INTO payment_transactions (id, payment_request_id, amount, status, created_at) "
                 "VALUES (?, ?, ?, 'SUCCESS', ?)", payment_id, req.id, tx.money(req.amount), tx.ts(at))
        note = f"payment of request {req.id}"
        _wallet_entries(tx, at, (req.client_id, req.amount, "DEBIT", note, payment_id),
                        (req.freelancer_id, req.amount, "CREDIT", note, payment_id))
        changed.append(_set_status(tx, req, int(r[9]), "PAID", at))
        mark = MarkMilestonePaid(milestone_id=req.milestone_id, payment_request_id=req.id)
        written = _enqueue(tx, at, hold, ("call", "contracts.MarkMilestonePaid", encode_json(mark)),
                           _event("payment.paid", req.freelancer_id, req.id))
        return _Effect(PayResult(transaction_id=payment_id, payment_request_id=req.id),
                       changed=tuple(changed), outbox=written)
    return _idempotent(tx, idem, at, effect, ahead)


# --- outbox -------------------------------------------------------------------------------------

def claim_outbox(tx: Tx, limit: int, lease: float, kind: str | None = None) -> list[OutboxItem]:
    """Due rows (of ``kind``, or of every kind) in ``seq`` order, leased for ``lease`` seconds so
    that another relay skips them meanwhile; a relay that dies mid-delivery leaves them to be
    claimed again when the lease runs out. ONE statement (pick and lease together)."""
    at = utc_now()
    of_kind, params = ("", ()) if kind is None else (" AND kind = ?", (kind,))
    rows = tx.all("UPDATE outbox SET next_attempt_at = ? WHERE seq IN (SELECT seq FROM outbox WHERE status = 'PENDING' "
                  f"AND next_attempt_at <= ?{of_kind} ORDER BY seq LIMIT ?{{skip_locked}}) "
                  "RETURNING seq, kind, name, payload, attempts",
                  tx.ts(at + dt.timedelta(seconds=lease)), tx.ts(at), *params, limit)
    return sorted((OutboxItem(seq=int(r[0]), kind=r[1], name=r[2], payload=bytes(r[3]), attempts=int(r[4]))
                   for r in rows), key=lambda i: i.seq)


def outbox_forget(tx: Tx, seqs: Sequence[int]) -> None:
    """Delivered rows (one, or all a handler delivered), in ONE statement."""
    tx.run(f"DELETE FROM outbox WHERE seq IN ({', '.join('?' for _ in seqs)})", *seqs)


def outbox_retry(tx: Tx, seq: int, delay: float, error: str) -> None:
    tx.run("UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? WHERE seq = ?",
           tx.ts(utc_now() + dt.timedelta(seconds=delay)), error[:500], seq)


def outbox_dead(tx: Tx, seq: int, error: str) -> None:
    tx.run("UPDATE outbox SET status = 'DEAD', attempts = attempts + 1, last_error = ? WHERE seq = ?",
           error[:500], seq)


def audit(tx: Tx) -> Audit:
    def total(sql: str) -> Decimal:
        row = tx.one(sql)
        return tx.decimal(row[0]) if row and row[0] is not None else Decimal("0.00")
    external = "SELECT SUM(amount) FROM wallet_transactions WHERE payment_transaction_id IS NULL AND transaction_type = "
    return Audit(balances=total("SELECT SUM(balance) FROM wallets"),
                 deposits=total(external + "'CREDIT'"), withdrawals=total(external + "'DEBIT'"))
