"""PostgreSQL specifics: live pool resizing seen in pg_stat_activity (through the controller's
signed ``set-max-db-connections``), the schema's last line of defence, idempotent migrations."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest
import trio

from workup.controller import broadcast
from workup.transport.envelope import Caller
from workup.messages import payments as m
from workup.settings import Settings
from workup.problems import ProblemError
from workup.services.payments.postgres import PostgresStore, StoreUnavailable
from workup.services.payments.store import MAX_TX_ATTEMPTS

from ._harness import running
from .conftest import PG_URL, db_url


def connections(application_name: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (application_name,)).fetchone()[0]


async def until_connections(application_name: str, n: int, timeout: float = 10.0) -> None:
    with trio.move_on_after(timeout):
        while await trio.to_thread.run_sync(connections, application_name) != n:
            await trio.sleep(0.05)
    assert await trio.to_thread.run_sync(connections, application_name) == n


async def test_set_max_db_connections_resizes_the_live_pool(pg_url, tmp_path):
    name = f"workup-pay-test-{uuid.uuid4().hex[:10]}"
    url = pg_url + ("&" if "?" in pg_url else "?") + f"application_name={name}"
    async with running(Settings(data_dir=str(tmp_path), payments_postgres_url=url)) as h:
        deps = h.instance.rt.deps
        await until_connections(name, deps.db_pool.pool_size())
        for size in (12, 3, 5):
            [reply] = await broadcast(h.t, "payments", h.system.control_secret, "set-max-db-connections", [str(size)], expect=1)
            assert reply.ok, reply
            assert deps.db_pool.pool_size() == size
            await until_connections(name, size)
        # still serving after the swaps
        assert await h.ok(m.GetMyWallet(), Caller(uuid.uuid4().hex, "CLIENT")) == {"balance": 0}
    await until_connections(name, 0)


async def test_balance_check_constraint_is_the_last_line_of_defence(pg_url):
    store = PostgresStore.open(pg_url, size=1)
    try:
        user = uuid.uuid4().hex
        await store.deposit(user, Decimal("1.00"), None)
        with psycopg.connect(pg_url, autocommit=True) as conn:
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute("UPDATE wallets SET balance = -0.01 WHERE user_id = %s", (user,))
            column = conn.execute("SELECT numeric_precision, numeric_scale FROM information_schema.columns "
                                  "WHERE table_name = 'wallets' AND column_name = 'balance'").fetchone()
            assert column == (14, 2)
    finally:
        await store.close()


async def test_migrations_are_idempotent_and_create_the_database(postgres_url):
    name = f"workup_pay_new_{uuid.uuid4().hex[:10]}"
    url = db_url(name)
    try:
        for _ in range(2):
            store = PostgresStore.open(url, size=1)      # creates the database on first open
            await store.close()
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT array_agg(version ORDER BY version) FROM schema_migrations").fetchone()[0] == [1, 2]
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name)))


def test_unreachable_server_is_a_one_line_error():
    with pytest.raises(StoreUnavailable) as exc:
        PostgresStore.open("postgresql://postgres@127.0.0.1:1/nothing", size=1)
    assert "\n" not in str(exc.value) and "cannot reach PostgreSQL" in str(exc.value)


async def test_a_transaction_that_keeps_conflicting_gives_up_with_503(pg_url):
    store = PostgresStore.open(pg_url, size=1)
    calls = []

    def always_conflicts(tx):
        calls.append(1)
        tx.one("SELECT 1")
        raise psycopg.errors.SerializationFailure("could not serialize access")
    try:
        with pytest.raises(ProblemError) as exc:
            await store._run(always_conflicts)
        assert exc.value.status == 503 and "nothing was changed" in exc.value.problem.detail
        assert len(calls) == store.retries == MAX_TX_ATTEMPTS
    finally:
        await store.close()


async def test_a_pipelined_write_that_fails_rolls_back_the_whole_transaction(pg_url):
    """The writes a script queues travel with the COMMIT: one that breaks the CHECK still undoes
    every statement before it (409, nothing written), and the connection serves the next one."""
    store = PostgresStore.open(pg_url, size=1)
    user = uuid.uuid4().hex

    def overdraw(tx):
        tx.queue("INSERT INTO wallet_transactions (id, user_id, amount, transaction_type, created_at) "
                 "VALUES (?, ?, 1, 'CREDIT', now())", uuid.uuid4().hex, user)
        tx.queue("UPDATE wallets SET balance = balance - 5 WHERE user_id = ?", user)
        return "committed"
    try:
        await store.deposit(user, Decimal("1.00"), None)
        for _ in range(7):            # past psycopg's prepare threshold: prepared statements too
            with pytest.raises(ProblemError) as exc:
                await store._run(overdraw)
            assert exc.value.status == 409
        assert await store.balance(user) == Decimal("1.00")
        assert len(await store.wallet_transactions(user)) == 1
        assert (await store.deposit(user, Decimal("2.00"), None)).status == 200
        assert await store.balance(user) == Decimal("3.00")
    finally:
        await store.close()
