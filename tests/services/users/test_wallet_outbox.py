"""The users outbox: wallet creation survives a users process that dies between storing the user
and hearing back from payments (the flag written with the user makes the relay deliver it after a
restart), and a closed account's token revocation survives a cache outage."""

from __future__ import annotations

import msgspec
import pytest
import trio

from workup.cache import CacheUnavailable

from workup.transport.envelope import Caller
from workup.messages import users as m
from workup.messages.contracts import ActiveContractAnswer, HasActiveContract
from workup.messages.payments import CreateWallet
from workup.settings import Settings
from workup.transport import DeadlineExceeded
from workup.runtime import Service
from workup.testing import fake_service, running_system
from workup.runtime.outbox import MAX_BACKOFF, POLL_INTERVAL, next_wait
from workup.services.users.sqlite import SqliteUserStore

from ._fakes import FakePayments, HangingPayments


def _users_with(settings, **fakes: Service[None]):
    """The real users service and ``fakes`` on a fresh in-process transport (a users "process")."""
    return running_system("embedded", ["users"], fakes=fakes, settings=settings, gateway=False,
                          concurrency=8, grace=0.5)


async def _flag_cleared(store, user_id):
    return not (await store.get(user_id)).wallet_pending


async def _wait_for_async(predicate, seconds=10.0):
    with trio.fail_after(seconds):
        while not await predicate():
            await trio.sleep(0.05)


async def test_wallet_is_created_after_a_crash_between_the_two_steps(tmp_path):
    settings = Settings(data_dir=str(tmp_path))
    email = "crash@example.com"

    # 1. payments receives CreateWallet but the users process dies before the acknowledgement
    hanging = HangingPayments()

    with trio.CancelScope() as users_process:
        async with _users_with(settings, payments=hanging.service) as system:

            async def register():
                with pytest.raises(DeadlineExceeded):
                    await system.call("users.RegisterClient",
                                      m.RegisterClient(email=email, password="password1", client_name="C"),
                                      Caller(), timeout=30)
            system.nursery.start_soon(register)
            await hanging.reached.wait()
            users_process.cancel()  # "kill": every task of the process goes away mid-command

    store = await SqliteUserStore.open(tmp_path / "users.sqlite3")
    user = await store.find_by_email(email)
    assert user is not None and user.wallet_pending
    await store.aclose()

    # 2. a fresh process (and a payments that answers) on the same data directory
    payments = FakePayments()
    async with _users_with(settings, payments=payments.service) as system:
        await system.wait_for(lambda: payments.wallets_for(user.id) >= 1)
        assert payments.created[0] == CreateWallet(user_id=user.id, role="CLIENT")
        store = await SqliteUserStore.open(tmp_path / "users.sqlite3")
        await _wait_for_async(lambda: _flag_cleared(store, user.id))
        await store.aclose()


async def test_relay_delivers_once_payments_comes_back(tmp_path):
    """Payments down at registration: 201 anyway, and the wallet appears when payments starts."""
    settings = Settings(data_dir=str(tmp_path))
    payments = FakePayments()
    async with _users_with(settings) as system:
        reply = await system.call("users.RegisterFreelancer",
                                  m.RegisterFreelancer(email="late@example.com", password="password1", full_name="F"),
                                  Caller(), timeout=10)
        assert reply.status == 201
        await system.start("payments", payments.service)
        await system.wait_for(lambda: len(payments.created) == 1, timeout=MAX_BACKOFF + 5)
        assert payments.created[0].role == "FREELANCER"


def test_relay_backoff_rule():
    assert next_wait(False, 8.0) == POLL_INTERVAL
    assert next_wait(True, POLL_INTERVAL) == 2 * POLL_INTERVAL
    assert next_wait(True, 2 * POLL_INTERVAL) == 4 * POLL_INTERVAL
    assert next_wait(True, MAX_BACKOFF) == MAX_BACKOFF


class FlakyCache:
    """The real in-process cache, except that closed-account flags fail while ``down``."""

    def __init__(self, inner):
        self.inner, self.down = inner, True

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def set_flag(self, key, value=b"1"):
        if self.down:
            raise CacheUnavailable("redis: connection refused (test)")
        await self.inner.set_flag(key, value)


async def test_closed_account_flag_is_written_after_a_cache_outage(tmp_path, monkeypatch):
    from workup.cache import MemoryCache, closed_account_key
    from workup.services.users import deps as _deps

    flaky = FlakyCache(MemoryCache())
    monkeypatch.setattr(_deps, "open_cache", lambda settings: flaky)
    settings = Settings(data_dir=str(tmp_path))
    payments = FakePayments()

    async def none_active(ctx, req: HasActiveContract) -> ActiveContractAnswer:
        return ActiveContractAnswer(active=False)
    contracts = fake_service("contracts", HasActiveContract=none_active)

    async with _users_with(settings, payments=payments.service, contracts=contracts) as system:
        reply = await system.call("users.RegisterClient", m.RegisterClient(email="gone@example.com", password="password1",
                                                                           client_name="C"), Caller(), timeout=10)
        user_id = msgspec.json.decode(reply.body)["userId"]
        reply = await system.call("users.DeleteMe", m.DeleteMe(password="password1"),
                                  Caller(user_id, "CLIENT"), timeout=10)
        assert reply.status == 204  # closed in the store; the flag waits in the outbox
        assert await flaky.inner.get_flag(closed_account_key(user_id)) is None
        flaky.down = False
        with trio.fail_after(MAX_BACKOFF + 5):
            while await flaky.inner.get_flag(closed_account_key(user_id)) is None:
                await trio.sleep(0.05)
        store = await SqliteUserStore.open(tmp_path / "users.sqlite3")
        await _wait_for_async(lambda: _revocation_done(store, user_id))
        await store.aclose()


async def _revocation_done(store, user_id):
    return not (await store.get(user_id)).revoke_pending
