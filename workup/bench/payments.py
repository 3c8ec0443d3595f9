"""``workup bench payments``: paying and withdrawing under contention.

The payments service runs in this process on the in-process transport (the runtime, the commands
and the store, no HTTP), on PostgreSQL (a fresh database ``workup_bench_<random>`` on the given
server, dropped afterwards) or SQLite. Two timed phases, ``--concurrency`` calls in flight:

- **withdraw**: every call withdraws 0.01 from one of ``--hot-wallets`` wallets (all callers fight
  for the same rows);
- **pay**: requests opened beforehand (untimed) between ``--hot-wallets`` clients and 8
  freelancers, each request paid by TWO concurrent callers (one wins, one gets 409).

Reported per phase: successful calls per second, p50/p99 latency of all answered calls, refused
(409) count, errors, and the store's serialization/deadlock retries. ``--isolation serializable``
runs the same transactions at SERIALIZABLE to show what the explicit row locks save. Finally the
money is audited: sum of balances = deposits − withdrawals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
import uuid
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any, AsyncIterator, Awaitable, Callable

import click

__all__ = ["command", "PhaseResult", "summarize"]

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class PhaseResult:
    phase: str
    ok: int
    refused: int
    errors: int
    seconds: float
    ok_per_s: float
    p50_ms: float
    p99_ms: float
    retries: int


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] * 1000, 2)


def summarize(phase: str, latencies: list[float], statuses: list[int], seconds: float, retries: int) -> PhaseResult:
    lat = sorted(latencies)
    ok = sum(1 for s in statuses if s < 400)
    refused = sum(1 for s in statuses if s == 409)
    return PhaseResult(phase, ok, refused, len(statuses) - ok - refused, round(seconds, 2),
                       round(ok / seconds, 1) if seconds else 0.0, _pct(lat, 0.50), _pct(lat, 0.99), retries)


async def _timed(phase: str, store: Any, concurrency: int, duration: float,
                 one: Callable[[int], Awaitable[int | None]]) -> PhaseResult:
    """Run ``one(i)`` from ``concurrency`` loops until ``duration`` passes or it returns None."""
    import trio

    latencies: list[float] = []
    statuses: list[int] = []
    counter = iter(range(10**9))
    retries0 = store.retries
    start = time.perf_counter()
    stop_at = start + duration

    async def loop() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            status = await one(next(counter))
            if status is None:
                return
            latencies.append(time.perf_counter() - t0)
            statuses.append(status)
    async with trio.open_nursery() as n:
        for _ in range(concurrency):
            n.start_soon(loop)
    return summarize(phase, latencies, statuses, time.perf_counter() - start, store.retries - retries0)


async def _run(opts: dict[str, Any]) -> dict[str, Any]:
    import trio

    from ..envelope import SERVICE_CALLER, Caller, reply_body
    from ..messages import payments as m
    from ..settings import Settings
    from ..workers import LocalTransport, serve_service
    from ..workers.payments import service
    from ..cache import open_cache
    from ..workers.payments._deps import PaymentsDeps, open_payments_deps
    from ..workers.payments._postgres import PostgresStore

    settings = Settings(data_dir=opts["data_dir"], payments_postgres_url=opts["pg_url"])
    t = LocalTransport()
    results: dict[str, Any] = {"store": opts["store"], "isolation": opts["isolation"],
                               "concurrency": opts["concurrency"], "hot_wallets": opts["hot_wallets"]}

    async def call(req: Any, caller: Caller) -> tuple[int, Any]:
        reply = await t.call(f"payments.{type(req).__name__}", req, caller=caller, timeout=60)
        return reply.status, reply

    # the service's own commands, with a store opened at the chosen isolation level and pool size
    @contextlib.asynccontextmanager
    async def deps_with_isolation(s: Settings) -> AsyncIterator[PaymentsDeps]:
        if opts["store"] == "postgres":
            store = await trio.to_thread.run_sync(lambda: PostgresStore.open(
                opts["pg_url"], opts["pool"], "workup-bench", opts["isolation"]))
            try:
                yield PaymentsDeps(store=store, cache=open_cache(s))
            finally:
                await store.close()
        else:
            async with open_payments_deps(s) as deps:
                yield deps

    bench_service = dataclasses.replace(service, open_deps=deps_with_isolation)
    async with trio.open_nursery() as n:
        instance = await n.start(lambda task_status: serve_service(
            bench_service, settings, t, concurrency=max(64, opts["concurrency"]), grace=5, control_secret="bench",
            task_status=task_status))
        store = instance.rt.deps.store

        clients = [Caller(uuid.uuid4().hex, "CLIENT") for _ in range(opts["hot_wallets"])]
        freelancers = [Caller(uuid.uuid4().hex, "FREELANCER") for _ in range(8)]
        for c in clients:
            for _ in range(3):
                assert (await call(m.Deposit(amount=Decimal("1000000000")), c))[0] == 200

        async def withdraw(i: int) -> int:
            return (await call(m.Withdraw(amount=Decimal("0.01")), clients[i % len(clients)]))[0]
        results["withdraw"] = asdict(await _timed("withdraw", store, opts["concurrency"], opts["duration"], withdraw))

        requests: list[tuple[str, Caller]] = []
        limiter = trio.CapacityLimiter(32)

        async def open_one(i: int) -> None:
            async with limiter:
                c, f = clients[i % len(clients)], freelancers[i % len(freelancers)]
                req = m.CreatePaymentRequest(milestone_id=uuid.uuid4().hex, contract_id=uuid.uuid4().hex,
                                             client_id=c.user_id, freelancer_id=f.user_id, amount=Decimal("1.25"))
                requests.append((reply_body((await call(req, SERVICE_CALLER))[1])["id"], c))
        async with trio.open_nursery() as opening:
            for i in range(opts["requests"]):
                opening.start_soon(open_one, i)

        async def pay(i: int) -> int | None:
            if i // 2 >= len(requests):
                return None          # every request paid (twice)
            request_id, payer = requests[i // 2]
            return (await call(m.PayRequest(id=request_id), payer))[0]
        results["pay"] = asdict(await _timed("pay", store, opts["concurrency"], opts["duration"], pay))

        audit = await store.audit()
        results["audit"] = {"balances": str(audit.balances), "deposits": str(audit.deposits),
                            "withdrawals": str(audit.withdrawals),
                            "conserved": audit.balances == audit.deposits - audit.withdrawals}
        n.cancel_scope.cancel()
    return results


def _row(r: dict[str, Any]) -> str:
    return (f"{r['phase']:<9} {r['ok']:>7} {r['refused']:>7} {r['errors']:>6} {r['seconds']:>7} "
            f"{r['ok_per_s']:>9} {r['p50_ms']:>8} {r['p99_ms']:>8} {r['retries']:>7}")


@click.command(name="payments")
@click.option("--postgres-url", "pg_server", envvar="WORKUP_PAYMENTS_POSTGRES_URL", default=DEFAULT_PG,
              show_default=True, help="server to create the scratch database on")
@click.option("--store", type=click.Choice(["postgres", "sqlite"]), default="postgres", show_default=True)
@click.option("--isolation", type=click.Choice(["read committed", "serializable"]), default="read committed",
              show_default=True)
@click.option("--duration", type=click.FloatRange(1, 600), default=5.0, show_default=True, help="seconds per phase")
@click.option("--concurrency", type=click.IntRange(1, 512), default=32, show_default=True)
@click.option("--hot-wallets", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option("--pool", type=click.IntRange(1, 200), default=8, show_default=True, help="database connections")
@click.option("--requests", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="payment requests opened before the pay phase")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="also save results here")
def command(pg_server: str, store: str, json_path: str | None, **opts: Any) -> None:
    """Pay and withdraw under contention: throughput, p99, serialization retries."""
    import tempfile

    import trio

    if not pg_server.startswith(("postgresql://", "postgres://")):
        raise click.BadParameter("must start with postgresql://", param_hint="--postgres-url")
    with tempfile.TemporaryDirectory(prefix="workup-bench-payments-") as data_dir:
        name = f"workup_bench_{uuid.uuid4().hex[:10]}"
        pg_url = _with_database(pg_server, name) if store == "postgres" else None
        try:
            results = trio.run(_run, {**opts, "store": store, "pg_url": pg_url, "data_dir": data_dir})
        except Exception as exc:  # noqa: BLE001 - one line for the operator, not a traceback
            raise click.ClickException(f"benchmark failed: {str(exc).strip().splitlines()[0] if str(exc) else exc!r}")
        finally:
            if pg_url:
                _drop_database(pg_server, name)
    click.echo(f"store={store} isolation={opts['isolation']} concurrency={opts['concurrency']} "
               f"hot wallets={opts['hot_wallets']} pool={opts['pool']}")
    click.echo(f"{'phase':<9} {'ok':>7} {'409':>7} {'errors':>6} {'seconds':>7} {'ok/s':>9} {'p50 ms':>8} "
               f"{'p99 ms':>8} {'retries':>7}")
    for phase in ("withdraw", "pay"):
        click.echo(_row(results[phase]))
    click.echo(f"money conserved: {results['audit']['conserved']}")
    if json_path:
        with open(json_path, "w") as f:
            json.dump(results, f, indent=2)
    if not results["audit"]["conserved"]:
        raise click.ClickException("money was not conserved")


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _drop_database(server: str, name: str) -> None:
    import psycopg
    from psycopg import sql
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        click.echo(f"warning: could not drop {name}: {exc}", err=True)


if __name__ == "__main__":
    command()
