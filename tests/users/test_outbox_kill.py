"""A real ``workup worker users`` process is SIGKILLed while payments holds its CreateWallet (the
user is stored, the wallet not acknowledged); a fresh process on the same store creates the
wallet through the outbox relay. Over the real RabbitMQ, with a recording payments double."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import trio

from workup.envelope import Caller
from workup.messages import users as m
from workup.messages.payments import CreateWallet
from workup.settings import Settings
from workup.transport import DeadlineExceeded
from workup.workers import AmqpTransport, serve_service
from workup.workers.users._sqlite import SqliteUserStore

from ._fakes import FakePayments, HangingPayments

ROOT = Path(__file__).resolve().parents[2]


def _start_worker(amqp_url: str, prefix: str, data_dir: str) -> subprocess.Popen:
    env = dict(os.environ, WORKUP_AMQP_URL=amqp_url, WORKUP_DATA_DIR=data_dir, WORKUP_LOG_LEVEL="WARNING",
               WORKUP_CONTROL_KEY="users-kill-test-control-key")
    env.pop("WORKUP_USERS_MONGO_URL", None)
    env.pop("WORKUP_REDIS_URL", None)
    return subprocess.Popen([sys.executable, "-m", "workup", "worker", "users", "--prefix", prefix, "--grace", "1"],
                            env=env, cwd=ROOT, stdin=subprocess.DEVNULL)


def _kill_hard(worker: subprocess.Popen) -> None:
    """SIGKILL the supervisor and its worker children (they run in sessions of their own), by pid:
    the process doing the registration dies mid-command, nothing gets to clean up."""
    procs = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
    assert len(procs) == 2, "expected the supervisor and one worker child"
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    _gone, alive = psutil.wait_procs(procs, timeout=10)
    assert not alive, alive


def _stop(worker: subprocess.Popen) -> None:
    """Graceful stop of a supervisor and its children (SIGTERM, then SIGKILL after 20 s)."""
    try:
        procs = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    worker.send_signal(signal.SIGTERM)
    _gone, alive = psutil.wait_procs(procs, timeout=20)
    for proc in alive:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)


async def _until(predicate, what: str, seconds: float = 60.0) -> None:
    with trio.fail_after(seconds):
        while not await predicate():
            await trio.sleep(0.1)


async def _serve(nursery, svc, settings, t):
    return await nursery.start(lambda task_status: serve_service(
        svc, settings, t, concurrency=4, grace=0.5, control_secret="s", task_status=task_status))


async def test_sigkill_between_storing_the_user_and_the_wallet(amqp_url, tmp_path):
    prefix = f"wtuserskill{uuid.uuid4().hex[:10]}"
    data_dir = str(tmp_path)
    settings = Settings(data_dir=data_dir, amqp_url=amqp_url)
    email = "killed@example.com"
    worker = _start_worker(amqp_url, prefix, data_dir)
    try:
        async with AmqpTransport.connect(amqp_url, prefix=prefix) as t:
            async def users_up() -> bool:
                return await t.consumer_count("users") > 0

            # 1. payments takes CreateWallet and never answers; the worker dies meanwhile
            hanging = HangingPayments()

            async with trio.open_nursery() as n:
                holder = await _serve(n, hanging.service, settings, t)
                await _until(users_up, "the users worker")

                async def register() -> None:
                    try:
                        await t.call("users.RegisterClient", m.RegisterClient(
                            email=email, password="password1", client_name="C"), caller=Caller(), timeout=20)
                    except DeadlineExceeded:
                        pass
                n.start_soon(register)
                with trio.fail_after(30):
                    await hanging.reached.wait()
                _kill_hard(worker)
                await holder.stop()
                n.cancel_scope.cancel()

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
            async with trio.open_nursery() as n:
                await _serve(n, payments.service, settings, t)
                worker = _start_worker(amqp_url, prefix, data_dir)

                async def wallet_created() -> bool:
                    return payments.wallets_for(user.id) >= 1

                async def flag_cleared() -> bool:
                    return not (await store.get(user.id)).wallet_pending

                await _until(wallet_created, "CreateWallet from the relay")
                assert payments.created[0] == CreateWallet(user_id=user.id, role="CLIENT")
                await _until(flag_cleared, "the outbox flag cleared")
                n.cancel_scope.cancel()
            await store.aclose()
            async with await t.conn.channel() as ch:
                for q in ("users", "users.dead", "payments", "payments.dead"):
                    await ch.delete_queue(f"{prefix}.{q}")
    finally:
        await trio.to_thread.run_sync(_stop, worker)
