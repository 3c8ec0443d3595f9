"""``workup bench jobs``: the jobs and contracts services over RabbitMQ on their real stores.

Topology: ``workup worker jobs``, ``workup worker contracts`` and ``workup worker echo`` (each its
own OS process, one unique queue prefix, Cassandra in a unique keyspace prefix when
``--cassandra-hosts`` is given, else SQLite), and this process as the load generator
(``_harness.closed_loop_trio`` over ``AmqpTransport``). Scenarios, at 1 and at ``--in-flight``
calls in flight:

- bare RPC round trip: ``echo.Echo`` (the runtime, no store), the yardstick;
- create job: ``jobs.CreateJob`` (index rows for every word + the job row, conditional insert);
- get job, uncached: ``jobs.GetJob`` (RPC → store read → cache fill);
- get job, cached: what the gateway does for ``GET /jobs/{id}`` on a hit (one Redis GET, no RPC);
- search: ``jobs.SearchJobs`` for a word every seeded job has, 20 per page;
- get contract: ``contracts.GetContract`` as a party (the worker's cache-aside read + access check).

Reported: throughput, p50/p99, and the uncached get's p50 over the bare round trip's p50 at 1 in
flight, measured in the same run.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import click

from . import _harness as H
from ..transport.identity import identity_env

__all__ = ["command"]

SERVICES = ("jobs", "contracts", "echo")
WORD = "benchword"


class _Workers:
    def __init__(self, opts: dict[str, Any], prefix: str, workdir: str) -> None:
        env = dict(os.environ, WORKUP_AMQP_URL=opts["amqp_url"], WORKUP_AMQP_PREFIX=prefix,
                   WORKUP_REDIS_URL=opts["redis_url"], WORKUP_LOG_LEVEL="WARNING", WORKUP_DATA_DIR=workdir,
                   WORKUP_CASSANDRA_KEYSPACE_PREFIX=prefix, **identity_env())  # this process's keys
        env.pop("WORKUP_CASSANDRA_HOSTS", None)
        if opts["cassandra_hosts"]:
            env["WORKUP_CASSANDRA_HOSTS"] = opts["cassandra_hosts"]
        self.log = open(os.path.join(workdir, "workers.log"), "ab")
        self.procs = [subprocess.Popen([sys.executable, "-m", "workup", "worker", name, "--grace", "5"],
                                       env=env, stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
                      for name in SERVICES]

    def stop(self) -> None:
        from ..cli.gateway import stop_processes

        stop_processes(self.procs, timeout=20)
        self.log.close()


async def _ready(transport: Any, procs: list[subprocess.Popen], timeout: float = 120) -> None:
    import trio
    deadline = time.monotonic() + timeout
    while True:
        if any(p.poll() is not None for p in procs):
            raise click.ClickException("a worker exited during start-up (see its log)")
        counts = [await transport.consumer_count(s) for s in SERVICES]
        if all(counts):
            return
        if time.monotonic() > deadline:
            raise click.ClickException(f"workers not consuming after {timeout:.0f}s: {dict(zip(SERVICES, counts))}")
        await trio.sleep(0.3)


async def _bench(opts: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    import msgspec

    from ..cache import RedisCache
    from ..transport.envelope import Caller, reply_body
    from ..messages.contracts import GetContract
    from ..messages.jobs import AcceptProposal, CreateJob, CreateProposal, GetJob, SearchJobs, job_cache_key
    from ..transport import AmqpTransport
    from ..services.echo import Echo

    client, freelancer = Caller(secrets.token_hex(16), "CLIENT"), Caller(secrets.token_hex(16), "FREELANCER")
    results: list[dict[str, Any]] = []
    async with AmqpTransport.connect(opts["amqp_url"], prefix=prefix, name="bench-jobs") as t:
        async def rpc(command: str, request: Any, caller: Caller = client) -> Any:
            return reply_body(await t.call(command, request, caller=caller, timeout=30))

        workers = _Workers(opts, prefix, opts["workdir"])
        try:
            await _ready(t, workers.procs)
            job_ids = [(await rpc("jobs.CreateJob", CreateJob(title=f"{WORD} job {i}", description="seeded")))["id"]
                       for i in range(opts["seed"])]
            target = job_ids[0]
            p = await rpc("jobs.CreateProposal", msgspec.convert({
                "jobId": job_ids[-1], "coverLetter": "bench", "jobDuration": "LESS_THAN_A_MONTH",
                "milestones": [{"description": "m", "amount": 10, "dueDate": "2030-01-01"}]}, CreateProposal), freelancer)
            contract_id = (await rpc("jobs.AcceptProposal", AcceptProposal(job_id=job_ids[-1], proposal_id=p["id"])))["contractId"]
            await rpc("jobs.GetJob", GetJob(job_id=target))   # fills the cache entry
            cache = RedisCache(opts["redis_url"])
            key = job_cache_key(target)
            if await cache.get(key) is None:
                raise click.ClickException("the job was not cached after a read")

            async def cached_get() -> None:
                if await cache.get(key) is None:
                    raise RuntimeError("cache miss")

            scenarios = [
                ("bare RPC round trip (echo)", lambda: t.call("echo.Echo", Echo("x" * 80, 1), caller=client, timeout=30)),
                ("create job", lambda: rpc("jobs.CreateJob", CreateJob(title=f"new {WORD}", description="bench"))),
                ("get job, uncached (RPC + store)", lambda: rpc("jobs.GetJob", GetJob(job_id=target))),
                ("get job, cached (Redis GET)", cached_get),
                ("search, 20 per page", lambda: rpc("jobs.SearchJobs", SearchJobs(query=WORD))),
                ("get contract", lambda: rpc("contracts.GetContract", GetContract(contract_id=contract_id))),
            ]
            for level in sorted({1, opts["in_flight"]}):
                for name, call in scenarios:
                    r = await H.closed_loop_trio(name, call, level, warmup=opts["warmup"], duration=opts["duration"])
                    click.echo(f"{name:<34} c={level:<3} {r.calls_per_s:>9.1f}/s  p50 {r.p50_ms:>8.2f} ms  "
                               f"p99 {r.p99_ms:>8.2f} ms  errors {r.errors}")
                    results.append(msgspec.to_builtins(r))
            await cache.aclose()
        finally:
            workers.stop()
    await _cleanup(opts["amqp_url"], prefix)
    return results


async def _cleanup(url: str, prefix: str) -> None:
    """The bench's queues and exchanges (unique prefix) go away with it."""
    from ..transport import AmqpTransport
    async with AmqpTransport.connect(url, prefix=prefix, name="bench-cleanup") as t:
        await t.delete_topology(SERVICES)


def _drop_keyspaces(hosts: str, prefix: str) -> None:
    from cassandra.cluster import Cluster

    from ..settings import Settings
    points = Settings(cassandra_hosts=hosts).cassandra_contact_points()
    cluster = Cluster([h for h, _ in points], port=points[0][1])
    try:
        session = cluster.connect()
        for s in ("jobs", "contracts"):
            session.execute(f"DROP KEYSPACE IF EXISTS {prefix}_{s}", timeout=60)
    finally:
        cluster.shutdown()


def ratio(results: list[dict[str, Any]]) -> float | None:
    """The uncached get's p50 over the bare round trip's p50, at 1 in flight."""
    p50 = {r["name"]: r["p50_ms"] for r in results if r["in_flight"] == 1}
    bare, get = p50.get("bare RPC round trip (echo)"), p50.get("get job, uncached (RPC + store)")
    return round(get / bare, 2) if bare and get else None


@click.command(name="jobs")
@click.option("--amqp-url", default=H.server_default("amqp_url", H.AMQP_DEV),
              show_default="WORKUP_AMQP_URL or the loopback broker")
@click.option("--redis-url", default=H.server_default("redis_url", H.REDIS_DEV),
              show_default="WORKUP_REDIS_URL or the loopback Redis")
@click.option("--cassandra-hosts", default=H.server_default("cassandra_hosts"),
              help="Cassandra for the stores (else SQLite)")
@click.option("--in-flight", default=16, type=click.IntRange(1, 1024), show_default=True)
@click.option("--seed", default=200, type=click.IntRange(1, 100_000), show_default=True, help="jobs created first")
@click.option("--warmup", default=1.0, type=click.FloatRange(0, 60), show_default=True)
@click.option("--duration", default=3.0, type=click.FloatRange(0.5, 600), show_default=True)
@click.option("--out", default=None, help="JSON result file (default perf/results/jobs-<time>.json)")
@H.check_option
def command(check: bool, **opts: Any) -> None:
    """Jobs and contracts: create, get (cached / uncached), search, get contract vs a bare RPC."""
    import trio
    prefix = f"bj{secrets.token_hex(5)}"
    workdir = tempfile.mkdtemp(prefix="workup-bench-jobs-")
    opts["workdir"] = workdir
    try:
        results = trio.run(_bench, opts, prefix)
    finally:
        if opts["cassandra_hosts"]:
            _drop_keyspaces(opts["cassandra_hosts"], prefix)
        shutil.rmtree(workdir, ignore_errors=True)
    summary = {"uncached get p50 / bare RPC p50 (1 in flight)": ratio(results)}
    click.echo(H.table(["scenario", "in flight", "calls/s", "p50 ms", "p99 ms", "errors"],
                       [[r["name"], r["in_flight"], r["calls_per_s"], r["p50_ms"], r["p99_ms"], r["errors"]]
                        for r in results]))
    click.echo(f"uncached get p50 / bare RPC p50 at 1 in flight: {summary['uncached get p50 / bare RPC p50 (1 in flight)']}")
    path = H.save_json("jobs", {"machine": H.machine(), "stores": "cassandra" if opts["cassandra_hosts"] else "sqlite",
                                "results": results, "summary": summary}, opts["out"])
    click.echo(f"saved {path}\n")
    # the figures are reported, not judged (docs/jobs-contracts.md); the target is a clean run
    H.judge([H.Target(name="failed calls", value=sum(r["errors"] for r in results), limit=0, at_most=True)], check)
