"""Payments service commands. Cross-service ones (called with the SERVICE role) come first;
the payments engineer adds the HTTP-facing ones below."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from decimal import ROUND_DOWN, Decimal

import msgspec

from ..cache import cache_key
from ..problems import Problem
from ._base import Message


# --- called by other services (idempotent) -------------------------------------------------------

class CreateWallet(Message):
    """users → payments at registration; idempotent on user_id. Reply: ``WalletBalance``."""
    user_id: str
    role: str  # "CLIENT" | "FREELANCER"


class GetWalletOf(Message):
    """A service's read of any user's balance (0 without a wallet). Reply: ``WalletBalance``."""
    user_id: str


class CloseWallet(Message):
    """users → payments when an account is closed: 409 unless the balance is zero; afterwards no
    deposit, withdrawal or payment touches the wallet. Idempotent. Reply: ``None``."""
    user_id: str


class WalletBalance(Message):
    balance: Decimal


class CreatePaymentRequest(Message):
    """contracts → payments when a milestone is ACCEPTED; idempotent on milestone_id.
    Reply: ``PaymentRequestRef``. ``id``: the request's id, derived by contracts from the milestone's
    (a fresh one when absent); a retry gets the first request's id whatever it sends."""
    milestone_id: str
    contract_id: str
    client_id: str
    freelancer_id: str
    amount: Decimal
    id: str | None = None


class PaymentRequestRef(Message):
    id: str


class CancelContractRequests(Message):
    """contracts → payments when a contract is TERMINATED: its PENDING requests become CANCELLED.
    Idempotent. Reply: ``None``."""
    contract_id: str


# --- money ----------------------------------------------------------------------------------------

MAX_AMOUNT = Decimal("1000000000")
_CENT = Decimal("0.01")


def amount_problem(amount: Decimal) -> str | None:
    """Why ``amount`` is not a valid amount of money (``None`` when it is): finite, > 0, at most
    2 decimal places, at most 1,000,000,000. Checked by the gateway's body structs and again by
    the service (a pure function, so both agree)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        return "amount must be a finite number"
    if amount <= 0:
        return "amount must be greater than 0"
    if amount > MAX_AMOUNT:
        return "amount must be at most 1000000000"
    if amount != amount.quantize(_CENT, rounding=ROUND_DOWN):
        return "amount must have at most 2 decimal places"
    return None


def check_amount(amount: Decimal) -> Decimal:
    """``amount`` normalised to cents, or ``ValueError`` with the reason."""
    reason = amount_problem(amount)
    if reason is not None:
        raise ValueError(reason)
    return amount.quantize(_CENT)


# --- read cache keys (the gateway reads them, the service fills and invalidates them) --------------

def wallet_cache_key(user_id: str) -> str:
    """The cached ``WalletBalance`` body of a user's wallet."""
    return cache_key("payments", "wallet", user_id)


def request_cache_key(request_id: str, reader_id: str) -> str:
    """The cached ``PaymentRequest`` body as served to one of its two parties (so the gateway can
    serve it without knowing who may read it: any other caller misses and gets the service's 403)."""
    return cache_key("payments", "request", f"{request_id}:{reader_id}")


MAX_IDEMPOTENCY_KEY = 255
ID_PATTERN = "^[0-9a-f]{32}$"   # ids this service makes (uuid4 hex)


# --- HTTP-facing: bodies (validated by the gateway) -----------------------------------------------

MAX_DESCRIPTION = 500


class MoneyBody(Message):
    """``POST /{me}/wallet/deposit`` and ``.../withdraw`` body. ``amount`` is kept as the raw JSON
    text so that only a JSON number is accepted (msgspec would also take a string) and it is read
    exactly, never through a float; :meth:`money` gives the checked Decimal."""
    amount: Annotated[msgspec.Raw, msgspec.Meta(
        description="exact amount: > 0, at most 2 decimal places, at most 1000000000",
        extra_json_schema={"type": "number", "exclusiveMinimum": 0, "maximum": 1000000000, "multipleOf": 0.01})]
    description: str | None = None

    def __post_init__(self) -> None:
        self.money()
        if self.description is not None and len(self.description) > MAX_DESCRIPTION:
            raise ValueError(f"description must be at most {MAX_DESCRIPTION} characters")

    def money(self) -> Decimal:
        text = bytes(self.amount).strip()
        if not text or text[:1] not in b"-0123456789":
            raise ValueError("amount must be a JSON number")
        return check_amount(Decimal(text.decode()))


# --- HTTP-facing: commands (the caller is the envelope's user; role CLIENT or FREELANCER) ---------

class GetMyWallet(Message):
    """Reply: ``WalletBalance``."""


class Deposit(Message):
    """Reply: ``WalletBalance``. ``idempotency_key``: the HTTP ``Idempotency-Key`` header."""
    amount: Decimal
    description: str | None = None
    idempotency_key: str | None = None


class Withdraw(Message):
    """Reply: ``WalletBalance``; 409 insufficient balance."""
    amount: Decimal
    description: str | None = None
    idempotency_key: str | None = None


class ListWalletTransactions(Message):
    """The caller's wallet transactions, newest first. Reply: ``list[WalletTransaction]``."""


class GetWalletTransaction(Message):
    """One of the caller's wallet transactions (404 for anyone else's). Reply: ``WalletTransaction``."""
    id: str


class ListMyRequests(Message):
    """Requests where the caller is the client (CLIENT) or the freelancer (FREELANCER), newest
    first. Reply: ``list[PaymentRequest]``."""


class ListMyTransactions(Message):
    """Payment transactions of those requests, newest first. Reply: ``list[PaymentTransaction]``."""


class GetPaymentRequest(Message):
    """Reply: ``PaymentRequest``; 404 missing, 403 not its client or freelancer."""
    id: str


class PayRequest(Message):
    """The request's client pays it. Reply: ``PayResult``; 409 already paid, cancelled or
    insufficient balance."""
    id: str
    idempotency_key: str | None = None


class RecordRefusal(Message):
    """The gateway refused an idempotent request (400/413/415) that carried an Idempotency-Key:
    that refusal becomes the key's first answer, unless the key already has one. Reply: the key's
    first answer (this problem, or what the earlier request with that key got)."""
    route: str
    idempotency_key: str
    problem: Problem


def idempotency_route(command: type, request_id: str | None = None) -> str:
    """The "route" part of an idempotency key's scope (user, route, key), the same for the
    gateway and the service: ``wallet/deposit``, ``wallet/withdraw``, ``requests/<id>/pay``."""
    if command is Deposit:
        return "wallet/deposit"
    if command is Withdraw:
        return "wallet/withdraw"
    if command is PayRequest:
        return f"requests/{request_id}/pay"
    raise ValueError(f"{command.__name__} takes no Idempotency-Key")


# --- replies ---------------------------------------------------------------------------------------

class WalletTransaction(Message):
    id: str
    amount: Decimal
    transaction_type: str          # "CREDIT" | "DEBIT"
    description: str | None
    payment_transaction_id: str | None
    created_at: dt.datetime


class PaymentRequest(Message):
    id: str
    client_id: str
    freelancer_id: str
    contract_id: str
    milestone_id: str
    amount: Decimal
    status: str                    # "PENDING" | "PAID" | "CANCELLED"
    created_at: dt.datetime
    updated_at: dt.datetime


class PaymentTransaction(Message):
    id: str
    payment_request_id: str
    amount: Decimal
    status: str                    # "SUCCESS"
    created_at: dt.datetime


class PayResult(Message):
    transaction_id: str
    payment_request_id: str
    status: str = "SUCCESS"
