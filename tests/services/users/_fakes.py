"""Test doubles of the users service's peers (payments, contracts): tiny real Services on the same
transport that record what they were asked. Used until/besides the real services."""

from __future__ import annotations

from decimal import Decimal

from workup.messages.contracts import ActiveContractAnswer, HasActiveContract
from workup.messages.payments import CloseWallet, CreateWallet, WalletBalance
from workup.problems import conflict
from workup.runtime import Service


class FakePayments:
    def __init__(self) -> None:
        self.created: list[CreateWallet] = []
        self.balances: dict[str, Decimal] = {}
        self.closed: set[str] = set()
        self.service = Service("payments")

        @self.service.command(CreateWallet)
        async def create(ctx, req: CreateWallet) -> WalletBalance:
            self.created.append(req)
            self.balances.setdefault(req.user_id, Decimal("0"))
            return WalletBalance(balance=self.balances[req.user_id])

        @self.service.command(CloseWallet)
        async def close(ctx, req: CloseWallet) -> None:
            balance = self.balances.setdefault(req.user_id, Decimal("0"))
            if balance != 0:
                raise conflict(f"the wallet balance is {balance}, not zero")
            self.closed.add(req.user_id)

    def wallets_for(self, user_id: str) -> int:
        return sum(1 for c in self.created if c.user_id == user_id)


class FakeContracts:
    def __init__(self) -> None:
        self.active: set[str] = set()
        self.service = Service("contracts")

        @self.service.command(HasActiveContract)
        async def has_active(ctx, req: HasActiveContract) -> ActiveContractAnswer:
            return ActiveContractAnswer(active=req.user_id in self.active)


class HangingPayments:
    """Takes ``CreateWallet`` and never answers (``reached`` is set when it got one)."""

    def __init__(self) -> None:
        import trio
        self.reached = trio.Event()
        self.service = Service("payments")

        @self.service.command(CreateWallet)
        async def never_answers(ctx, req: CreateWallet) -> None:
            self.reached.set()
            await trio.sleep_forever()
