"""Test doubles of the users service's peers (payments, contracts), built with
``workup.testing.fake_service``: real Services on the same transport that record what they were
asked and answer from state a test sets (balances, ACTIVE contracts)."""

from __future__ import annotations

from decimal import Decimal

import trio

from workup.messages.contracts import ActiveContractAnswer, HasActiveContract
from workup.messages.payments import CloseWallet, CreateWallet, WalletBalance
from workup.problems import conflict
from workup.runtime import Context
from workup.testing import fake_service


class FakePayments:
    def __init__(self) -> None:
        self.created: list[CreateWallet] = []
        self.balances: dict[str, Decimal] = {}
        self.closed: set[str] = set()
        self.service = fake_service("payments", CreateWallet=self._create, CloseWallet=self._close)

    async def _create(self, ctx: Context[None], req: CreateWallet) -> WalletBalance:
        self.created.append(req)
        self.balances.setdefault(req.user_id, Decimal("0"))
        return WalletBalance(balance=self.balances[req.user_id])

    async def _close(self, ctx: Context[None], req: CloseWallet) -> None:
        balance = self.balances.setdefault(req.user_id, Decimal("0"))
        if balance != 0:
            raise conflict(f"the wallet balance is {balance}, not zero")
        self.closed.add(req.user_id)

    def wallets_for(self, user_id: str) -> int:
        return sum(1 for c in self.created if c.user_id == user_id)


class FakeContracts:
    def __init__(self) -> None:
        self.active: set[str] = set()
        self.service = fake_service("contracts", HasActiveContract=self._has_active)

    async def _has_active(self, ctx: Context[None], req: HasActiveContract) -> ActiveContractAnswer:
        return ActiveContractAnswer(active=req.user_id in self.active)


class HangingPayments:
    """Takes ``CreateWallet`` and never answers (``reached`` is set when it got one)."""

    def __init__(self) -> None:
        self.reached = trio.Event()
        self.service = fake_service("payments", CreateWallet=self._never_answers)

    async def _never_answers(self, ctx: Context[None], req: CreateWallet) -> None:
        self.reached.set()
        await trio.sleep_forever()
