"""``workup bench users``: login throughput with the users service on 1 vs 2 worker processes, and
a cached ``GET /api/v1/users/me`` against a bare quart-trio JSON endpoint, over real HTTP.

Topology, each part its own OS process: the users service (``workup worker users --processes N``,
RabbitMQ with a unique prefix, SQLite or ``--users-mongo-url``), the real gateway app on
hypercorn's trio worker (``python -m workup.bench.users gateway``, Redis cache), a bare quart-trio
app on the same server code (``... bare``), and this process as the load generator
(``_harness.closed_loop_trio`` over httpx). Targets (issue 4): login with 2 processes ≥ 1.7× with
1 process; the cached GET ≥ 0.7× the bare endpoint. Login is CPU-bound (scrypt, one hashing thread
per process), so its scaling needs two idle cores: the load average is saved with the results.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import msgspec

from . import _harness as H

__all__ = ["command", "ratios"]

PASSWORD = "bench-password-1"
LOGIN, CACHED, BARE = "login", "cached GET /api/v1/users/me", "bare quart-trio JSON GET"
# issue 4's targets, on the ratios of ratios() below
TARGETS = {"login 2 processes / 1 process": 1.7, "cached GET /me / bare GET": 0.7}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Users:
    """``workup worker users --processes N`` on a unique prefix, plus the gateway in front."""

    def __init__(self, opts: dict[str, Any], processes: int, workdir: str) -> None:
        self.prefix = f"bu{secrets.token_hex(5)}"
        self.amqp_url = opts["amqp_url"]
        data_dir = os.path.join(workdir, self.prefix)
        env = dict(os.environ, WORKUP_AMQP_URL=self.amqp_url, WORKUP_AMQP_PREFIX=self.prefix,
                   WORKUP_REDIS_URL=opts["redis_url"], WORKUP_DATA_DIR=data_dir, WORKUP_LOG_LEVEL="WARNING")
        env.pop("WORKUP_USERS_MONGO_URL", None)
        if opts["users_mongo_url"]:
            parts = urlsplit(opts["users_mongo_url"])  # a database of its own, dropped afterwards
            env["WORKUP_USERS_MONGO_URL"] = urlunsplit(parts._replace(path=f"/{self.prefix}"))
        self.mongo_url = env.get("WORKUP_USERS_MONGO_URL")
        self.log = open(os.path.join(workdir, f"{self.prefix}.log"), "ab")
        self.worker = subprocess.Popen([sys.executable, "-m", "workup", "worker", "users", "--processes",
                                        str(processes), "--grace", "2"], env=env, stdout=self.log,
                                       stderr=self.log, stdin=subprocess.DEVNULL)
        port = _free_port()
        self.gateway = H.Server("workup.bench.users", "gateway", "--port", str(port), "--prefix", self.prefix,
                                "--amqp-url", self.amqp_url, "--redis-url", opts["redis_url"])
        self.base = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.gateway.stop()
        from ..cli.gateway import stop_processes

        stop_processes([self.worker], timeout=20)
        self.log.close()


async def _register(base: str, email: str, worker: subprocess.Popen, timeout: float = 60) -> str:
    """The users queue may have no consumer yet (503): retry until the worker serves."""
    import httpx
    import trio
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        while True:
            if worker.poll() is not None:
                raise click.ClickException(f"the users worker exited with code {worker.returncode}")
            r = await client.post("/api/v1/users/clients/register",
                                  json={"email": email, "password": PASSWORD, "clientName": "Bench"})
            if r.status_code == 201:
                return r.json()["authToken"]
            if r.status_code not in (503, 504) or time.monotonic() > deadline:
                raise click.ClickException(f"registration failed: {r.status_code} {r.text}")
            await trio.sleep(0.3)


async def _http_loop(name: str, base: str, request: dict[str, Any], expect: int, in_flight: int,
                     opts: dict[str, Any]) -> dict[str, Any]:
    import httpx
    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        async def call() -> None:
            r = await client.request(**request)
            if r.status_code != expect:
                raise RuntimeError(f"{r.status_code}")
        result = await H.closed_loop_trio(name, call, in_flight, warmup=opts["warmup"], duration=opts["duration"])
    return msgspec.to_builtins(result)


async def _bench(opts: dict[str, Any], workdir: str) -> list[dict[str, Any]]:
    """Start every system first, then measure in interleaved rounds (the order reversed every other
    round), so load that other programs put on the machine hits every scenario alike."""
    systems: list[_Users] = []
    bare: H.Server | None = None
    try:
        scenarios: list[tuple[str, int | None, str, dict[str, Any], int]] = []
        for processes in opts["processes"]:
            users = _Users(opts, processes, workdir)
            systems.append(users)
            email = f"bench-{users.prefix}@example.com"
            token = await _register(users.base, email, users.worker)
            scenarios.append((LOGIN, processes, users.base, {
                "method": "POST", "url": "/api/v1/users/login", "json": {"email": email, "password": PASSWORD}},
                opts["login_in_flight"]))
            if len(systems) == 1:
                scenarios.append((CACHED, processes, users.base, {
                    "method": "GET", "url": "/api/v1/users/me", "headers": {"Authorization": f"Bearer {token}"}},
                    opts["get_in_flight"]))
        bare = H.Server("workup.bench.users", "bare", "--port", str(port := _free_port()))
        scenarios.append((BARE, None, f"http://127.0.0.1:{port}", {"method": "GET", "url": "/"}, opts["get_in_flight"]))
        results = []
        for round_ in range(opts["rounds"]):
            for name, processes, base, request, in_flight in (scenarios if round_ % 2 == 0 else scenarios[::-1]):
                r = await _http_loop(name, base, request, 200, in_flight, opts)
                results.append({**r, "processes": processes, "round": round_})
        return results
    finally:
        if bare is not None:
            bare.stop()
        for users in systems:
            users.stop()
            await _cleanup(users)


async def _cleanup(users: _Users) -> None:
    """The run's queues and exchanges (unique prefix) and its Mongo database go away with it."""
    from ..transport import AmqpTransport
    async with AmqpTransport.connect(users.amqp_url, prefix=users.prefix, name="bench-users-cleanup") as t:
        await t.delete_topology(["users", "payments"])
    if users.mongo_url:
        import pymongo
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(users.mongo_url, serverSelectionTimeoutMS=5000)
        try:
            client.drop_database(client.get_default_database())
        finally:
            client.close()


def ratios(results: list[dict[str, Any]]) -> dict[str, float | None]:
    """Median over rounds of the per-round ratios (paired, so slow rounds do not bias them):
    login(2 processes) / login(1 process) and cached GET / bare GET, in calls per second."""
    by_round: dict[int, dict[tuple[str, Any], float]] = {}
    for r in results:
        by_round.setdefault(r["round"], {})[(r["name"], r["processes"])] = r["calls_per_s"]
    login, get = [], []
    for rate in by_round.values():
        cached = next((v for (name, _), v in rate.items() if name == CACHED), None)
        if rate.get((LOGIN, 1)) and rate.get((LOGIN, 2)):
            login.append(rate[(LOGIN, 2)] / rate[(LOGIN, 1)])
        if cached and rate.get((BARE, None)):
            get.append(cached / rate[(BARE, None)])
    med_login = statistics.median(login) if login else None
    med_get = statistics.median(get) if get else None
    return {"login 2 processes / 1 process": round(med_login, 2) if med_login else None,
            "cached GET /me / bare GET": round(med_get, 2) if med_get else None}


def _process_counts(ctx: click.Context, param: click.Parameter, value: str) -> list[int]:
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated counts, got {value!r}") from None
    if not counts or any(not 1 <= c <= 16 for c in counts):
        raise click.BadParameter("process counts must be between 1 and 16")
    return counts


@click.group(name="users", invoke_without_command=True)
@click.option("--amqp-url", default=H.server_default("amqp_url", H.AMQP_DEV),
              show_default="WORKUP_AMQP_URL or the loopback broker")
@click.option("--redis-url", default=H.server_default("redis_url", H.REDIS_DEV),
              show_default="WORKUP_REDIS_URL or the loopback Redis")
@click.option("--users-mongo-url", default=H.server_default("users_mongo_url"),
              help="MongoDB/FerretDB server for the users store, a database per run (else SQLite)")
@click.option("--processes", default="1,2", callback=_process_counts, show_default=True,
              help="users worker process counts to compare for login")
@click.option("--login-in-flight", default=8, type=click.IntRange(1, 1024), show_default=True)
@click.option("--get-in-flight", default=32, type=click.IntRange(1, 1024), show_default=True)
@click.option("--warmup", default=0.5, type=click.FloatRange(0, 60), show_default=True)
@click.option("--duration", default=3.0, type=click.FloatRange(0.5, 600), show_default=True,
              help="seconds measured per scenario per round")
@click.option("--rounds", default=3, type=click.IntRange(1, 100), show_default=True,
              help="interleaved measuring rounds (ratios are the median of the per-round ratios)")
@click.option("--out", default=None, help="JSON result file (default perf/results/users-<time>.json)")
@H.check_option
@click.pass_context
def command(ctx: click.Context, check: bool, **opts: Any) -> None:
    """Login (1 vs 2 users processes) and cached GET /me vs a bare quart-trio endpoint."""
    if ctx.invoked_subcommand is not None:
        return
    import trio
    workdir = tempfile.mkdtemp(prefix="workup-bench-users-")
    load_before = H.machine()
    try:
        results = trio.run(_bench, opts, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary = ratios(results)
    click.echo(H.table(["round", "scenario", "processes", "in flight", "calls/s", "p50 ms", "p99 ms", "errors"],
                       [[r["round"], r["name"], r["processes"], r["in_flight"], r["calls_per_s"], r["p50_ms"],
                         r["p99_ms"], r["errors"]] for r in results]))
    for name, value in summary.items():
        click.echo(f"{name}: {value}")
    path = H.save_json("users", {"machine_before": load_before, "machine_after": H.machine(),
                                 "stores": "mongo" if opts["users_mongo_url"] else "sqlite",
                                 "results": results, "summary": summary}, opts["out"])
    click.echo(f"saved {path}\n")
    H.judge([H.Target(name=name, value=summary.get(name), limit=limit) for name, limit in TARGETS.items()
             if name != "login 2 processes / 1 process" or opts["processes"] == [1, 2]], check)


# --- the server processes the bench starts (they print READY once they serve) -----------------------

@command.command(name="gateway", hidden=True)
@click.option("--port", type=int, required=True)
@click.option("--prefix", required=True)
@click.option("--amqp-url", required=True)
@click.option("--redis-url", required=True)
def _gateway_process(port: int, prefix: str, amqp_url: str, redis_url: str) -> None:
    """The real gateway app over RabbitMQ (``prefix``) with the Redis cache."""
    import trio

    from ..cache import open_cache
    from ..gateway import create_app, serve_app
    from ..settings import Settings
    from ..transport import AmqpTransport

    settings = Settings(amqp_url=amqp_url, redis_url=redis_url)

    async def main() -> None:
        async with AmqpTransport.connect(amqp_url, prefix=prefix, name="bench-gateway") as transport:
            app = create_app(settings, transport, open_cache(settings), jwt_keys=secrets.token_urlsafe(32))
            async with trio.open_nursery() as nursery:
                await nursery.start(serve_app, app, "127.0.0.1", port)
                print("READY", flush=True)

    trio.run(main)


@command.command(name="bare", hidden=True)
@click.option("--port", type=int, required=True)
def _bare_process(port: int) -> None:
    """A bare quart-trio JSON endpoint on the same hypercorn trio server code as the gateway."""
    import trio
    from quart import Response
    from quart_trio import QuartTrio

    from ..gateway import serve_app

    app = QuartTrio("bare")
    body = json.dumps({"userId": "0" * 32, "email": "bare@example.com", "userType": "CLIENT", "name": "Bare"})

    @app.get("/")
    async def index() -> Response:
        return Response(body, content_type="application/json")

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve_app, app, "127.0.0.1", port)
            print("READY", flush=True)

    trio.run(main)


if __name__ == "__main__":
    command()
