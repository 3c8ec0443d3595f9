"""Payments service commands. Cross-service ones (called with the SERVICE role) come first;
the payments engineer adds the HTTP-facing ones below."""

from __future__ import annotations

from decimal import Decimal

from ._base import Message


# --- called by other services (idempotent) -------------------------------------------------------

class CreateWallet(Message):
    """users → payments at registration; idempotent on user_id. Reply: ``WalletBalance``."""
    user_id: str
    role: str  # "CLIENT" | "FREELANCER"


class GetWalletOf(Message):
    """users → payments before closing an account. Reply: ``WalletBalance``."""
    user_id: str


class WalletBalance(Message):
    balance: Decimal


class CreatePaymentRequest(Message):
    """contracts → payments when a milestone is ACCEPTED; idempotent on milestone_id.
    Reply: ``PaymentRequestRef``."""
    milestone_id: str
    contract_id: str
    client_id: str
    freelancer_id: str
    amount: Decimal


class PaymentRequestRef(Message):
    id: str


class CancelContractRequests(Message):
    """contracts → payments when a contract is TERMINATED: its PENDING requests become CANCELLED.
    Idempotent. Reply: ``None``."""
    contract_id: str
