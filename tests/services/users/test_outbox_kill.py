"""A real ``workup worker users`` process is SIGKILLed while payments holds its CreateWallet (the
user is stored, the wallet not acknowledged); a fresh process on the same store creates the
wallet through the outbox relay. Over the real RabbitMQ, with a recording payments double."""

from __future__ import annotations

import uuid

import trio

from workup.transport.envelope import Caller
from workup.messages import users as m
from workup.messages.payments import CreateWallet
from workup.settings import Settings
from workup.testing import running_system
from workup.transport import DeadlineExceeded
from workup.services.users.sqlite import SqliteUserStore

from ._fakes import FakePayments, HangingPayments
from ._procs import kill_hard, start_worker, stop, until

async def test_sigkill_between_storing_the_user_and_the_wallet(amqp_url, tmp_path):
    prefix = f"wtuserskill{uuid.uuid4().hex[:10]}"
    data_dir = str(tmp_path)
    settings = Settings(data_dir=data_dir, amqp_url=amqp_url)
    email = "killed@example.com"
    worker = start_worker(amqp_url, prefix, data_dir)
    try:
        async with running_system("distributed", [], settings=settings, prefix=prefix, gateway=False,
                                  concurrency=4, grace=0.5) as system:
            system.started.add("users")   # the worker processes' queues go at the end too
            t = system.transport

            async def users_up() -> bool:
                return await t.consumer_count("users") > 0

            # 1. payments takes CreateWallet and never answers; the worker dies meanwhile
            hanging = HangingPayments()
            holder = await system.start("payments", hanging.service)
            await until(users_up, "the users worker")

            async def register() -> None:
                try:
                    await system.call("users.RegisterClient", m.RegisterClient(
                        email=email, password="password1", client_name="C"), Caller(), timeout=20)
                except DeadlineExceeded:
                    pass
            system.nursery.start_soon(register)
            with trio.fail_after(30):
                await hanging.reached.wait()
            kill_hard(worker)
            await holder.stop()
            system.kill("payments")

            store = await SqliteUserStore.open(tmp_path / "users.sqlite3")
            user = await store.find_by_email(email)
            assert user is not None and user.wallet_pending

            # the held CreateWallet and the unacked RegisterClient (which a redelivery would replay)
            # go away with the dead attempt: only the outbox relay can bring the wallet back
            async with await t.conn.channel() as ch:
                await ch.purge_queue(f"{prefix}.payments")
                await ch.purge_queue(f"{prefix}.users")

            # 2. a fresh worker process, and a payments that answers
            payments = FakePayments()
            await system.start("payments", payments.service)
            worker = start_worker(amqp_url, prefix, data_dir)

            async def wallet_created() -> bool:
                return payments.wallets_for(user.id) >= 1

            async def flag_cleared() -> bool:
                return not (await store.get(user.id)).wallet_pending

            await until(wallet_created, "CreateWallet from the relay")
            assert payments.created[0] == CreateWallet(user_id=user.id, role="CLIENT")
            await until(flag_cleared, "the outbox flag cleared")
            await store.aclose()
    finally:
        await trio.to_thread.run_sync(stop, worker)
