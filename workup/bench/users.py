"""``workup bench users``: login throughput (users worker with 1 vs 2 processes) and a cached
``GET /api/v1/users/me`` against a bare quart-trio JSON endpoint, over real HTTP.

Topology, each part its own OS process so they do not share an interpreter: the users service
(``workup worker users --processes N``, RabbitMQ with a unique prefix), a gateway
(``python -m workup.bench.users gateway``: the real app on hypercorn's trio worker, Redis cache),
a bare quart-trio app on the same server code (``... bare``), and this process as the HTTP load
generator (httpx, N requests in flight for a fixed time). Targets (issue 4): login with 2 processes
≥ 1.7× with 1; the cached GET ≥ 0.7× the bare endpoint.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Callable

import click

__all__ = ["command", "Stats", "summarize"]

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
PASSWORD = "bench-password-1"


@dataclass
class Stats:
    name: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


def summarize(name: str, latencies: list[float], errors: int, seconds: float) -> Stats:
    """Throughput counts successful requests only; percentiles are of successful requests."""
    lat = sorted(latencies)
    return Stats(name=name, requests=len(lat), errors=errors, seconds=round(seconds, 3),
                 rps=round(len(lat) / seconds, 1) if seconds > 0 else 0.0,
                 p50_ms=round(_percentile(lat, 0.50) * 1000, 2), p99_ms=round(_percentile(lat, 0.99) * 1000, 2))


async def _load(name: str, send: Callable[[Any], Awaitable[bool]], *, duration: float, concurrency: int,
                base_url: str) -> Stats:
    import httpx
    import trio

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        await send(client)  # warm-up: connections, caches
        start = time.perf_counter()
        stop_at = start + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                ok = await send(client)
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        async with trio.open_nursery() as n:
            for _ in range(concurrency):
                n.start_soon(worker)
        elapsed = time.perf_counter() - start
    return summarize(name, latencies, errors, elapsed)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(args: list[str], env: dict[str, str], log_path: str) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


async def _wait_http(url: str, check: Callable[[Any], bool], what: str, timeout: float = 60.0,
                     procs: tuple[subprocess.Popen, ...] = ()) -> None:
    import httpx
    import trio

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            for p in procs:
                if p.poll() is not None:
                    raise click.ClickException(f"{what}: a process exited with code {p.returncode}")
            try:
                if check(await client.get(url)):
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise click.ClickException(f"{what} did not come up within {timeout:.0f}s")
            await trio.sleep(0.2)


class _Run:
    """One system under test: users workers + gateway processes for a given process count."""

    def __init__(self, opts: dict[str, Any], workdir: str) -> None:
        self.opts, self.workdir = opts, workdir
        self.prefix = f"bench{secrets.token_hex(4)}"
        self.jwt_key = secrets.token_urlsafe(32)
        self.procs: list[subprocess.Popen] = []

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(WORKUP_AMQP_URL=self.opts["amqp_url"], WORKUP_REDIS_URL=self.opts["redis_url"],
                   WORKUP_DATA_DIR=os.path.join(self.workdir, self.prefix), WORKUP_JWT_KEY=self.jwt_key,
                   WORKUP_LOG_LEVEL="WARNING")
        if self.opts.get("users_mongo_url"):
            env["WORKUP_USERS_MONGO_URL"] = self.opts["users_mongo_url"]
        return env

    async def start(self, processes: int) -> str:
        env, log = self.env(), os.path.join(self.workdir, f"{self.prefix}.log")
        port = _free_port()
        self.procs.append(_spawn([sys.executable, "-m", "workup", "worker", "users", "--processes", str(processes),
                                  "--prefix", self.prefix, "--grace", "2"], env, log))
        self.procs.append(_spawn([sys.executable, "-m", "workup.bench.users", "gateway", "--port", str(port),
                                  "--prefix", self.prefix], env, log))
        base = f"http://127.0.0.1:{port}"
        await _wait_http(f"{base}/health", lambda r: r.status_code == 200, "the gateway", procs=tuple(self.procs))
        return base

    async def stop(self) -> None:
        for p in reversed(self.procs):
            _stop(p)
        self.procs.clear()
        await _delete_topology(self.opts["amqp_url"], self.prefix)


async def _delete_topology(amqp_url: str, prefix: str) -> None:
    """The bench's queues and exchanges (unique prefix) go away with it."""
    from ..amqp import connect
    async with connect(amqp_url, name="bench-cleanup") as conn:
        async with await conn.channel() as ch:
            for q in (f"{prefix}.users", f"{prefix}.users.dead", f"{prefix}.payments", f"{prefix}.payments.dead"):
                await ch.delete_queue(q)
            for x in (f"{prefix}.dlx", f"{prefix}.events", f"{prefix}.control.users"):
                await ch.delete_exchange(x)


async def _register(base: str, email: str) -> str:
    import httpx
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for _ in range(100):  # the users queue may not have a consumer yet (503)
            r = await client.post("/api/v1/users/clients/register",
                                  json={"email": email, "password": PASSWORD, "clientName": "Bench"})
            if r.status_code == 201:
                return r.json()["authToken"]
            if r.status_code not in (503, 504):
                raise click.ClickException(f"registration failed: {r.status_code} {r.text}")
            import trio
            await trio.sleep(0.3)
    raise click.ClickException("the users service never answered")


async def _bench(opts: dict[str, Any]) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="workup-bench-users-")
    results: dict[str, Any] = {"login": {}, "options": {k: v for k, v in opts.items() if "url" not in k}}
    try:
        for processes in opts["processes"]:
            run = _Run(opts, workdir)
            try:
                base = await run.start(processes)
                email = f"bench-{run.prefix}@example.com"
                token = await _register(base, email)
                login_body = {"email": email, "password": PASSWORD}

                async def login(client: Any) -> bool:
                    r = await client.post("/api/v1/users/login", json=login_body)
                    return r.status_code == 200

                stats = await _load(f"login, {processes} process(es)", login, duration=opts["duration"],
                                    concurrency=opts["login_concurrency"], base_url=base)
                results["login"][processes] = stats
                click.echo(_row(stats))
                if processes == opts["processes"][0]:
                    headers = {"Authorization": f"Bearer {token}"}

                    async def me(client: Any) -> bool:
                        r = await client.get("/api/v1/users/me", headers=headers)
                        return r.status_code == 200

                    stats = await _load("cached GET /api/v1/users/me", me, duration=opts["duration"],
                                        concurrency=opts["get_concurrency"], base_url=base)
                    results["cached_me"] = stats
                    click.echo(_row(stats))
            finally:
                await run.stop()
        results["bare"] = await _bare(opts, workdir)
        click.echo(_row(results["bare"]))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


async def _bare(opts: dict[str, Any], workdir: str) -> Stats:
    port = _free_port()
    proc = _spawn([sys.executable, "-m", "workup.bench.users", "bare", "--port", str(port)], dict(os.environ),
                  os.path.join(workdir, "bare.log"))
    try:
        base = f"http://127.0.0.1:{port}"
        await _wait_http(f"{base}/", lambda r: r.status_code == 200, "the bare endpoint", procs=(proc,))

        async def get(client: Any) -> bool:
            r = await client.get("/")
            return r.status_code == 200

        return await _load("bare quart-trio JSON GET", get, duration=opts["duration"],
                           concurrency=opts["get_concurrency"], base_url=base)
    finally:
        _stop(proc)


def _row(s: Stats) -> str:
    return f"{s.name:<36} {s.rps:>9.1f} req/s   p50 {s.p50_ms:>8.2f} ms   p99 {s.p99_ms:>8.2f} ms   errors {s.errors}"


def _ratios(results: dict[str, Any]) -> dict[str, float]:
    out = {}
    login = results["login"]
    if 1 in login and 2 in login and login[1].rps:
        out["login_2_over_1"] = round(login[2].rps / login[1].rps, 2)
    if "cached_me" in results and results["bare"].rps:
        out["cached_me_over_bare"] = round(results["cached_me"].rps / results["bare"].rps, 2)
    return out


def _parse_processes(value: str) -> list[int]:
    try:
        counts = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"expected a comma-separated list of counts, got {value!r}") from None
    if not counts or any(not 1 <= c <= 16 for c in counts):
        raise click.BadParameter("process counts must be between 1 and 16")
    return counts


@click.group(name="users", invoke_without_command=True)
@click.option("--amqp-url", envvar="WORKUP_AMQP_URL", default=DEFAULT_AMQP, show_default=True)
@click.option("--redis-url", envvar="WORKUP_REDIS_URL", default=DEFAULT_REDIS, show_default=True)
@click.option("--users-mongo-url", envvar="WORKUP_USERS_MONGO_URL", default=None,
              help="users store (default: SQLite in a temporary directory)")
@click.option("--duration", type=click.FloatRange(1, 600), default=10.0, show_default=True,
              help="seconds of load per scenario")
@click.option("--processes", "processes", default="1,2", show_default=True,
              help="users worker process counts to compare for login")
@click.option("--login-concurrency", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--get-concurrency", type=click.IntRange(1, 1024), default=32, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="also save results here")
@click.pass_context
def command(ctx: click.Context, json_path: str | None, processes: str, **opts: Any) -> None:
    """Login throughput (1 vs 2 users processes) and cached GET /me vs a bare endpoint."""
    if ctx.invoked_subcommand is not None:
        return
    import trio

    opts["processes"] = _parse_processes(processes)
    results = trio.run(_bench, opts)
    ratios = _ratios(results)
    for name, value in ratios.items():
        click.echo(f"{name}: {value}")
    if json_path:
        doc = {"login": {str(k): asdict(v) for k, v in results["login"].items()},
               "cached_me": asdict(results["cached_me"]) if "cached_me" in results else None,
               "bare": asdict(results["bare"]), "ratios": ratios, "options": results["options"]}
        with open(json_path, "w") as f:
            json.dump(doc, f, indent=2)


# --- the server processes the bench starts ----------------------------------------------------------

@command.command(name="gateway", hidden=True)
@click.option("--port", type=int, required=True)
@click.option("--prefix", required=True)
def _gateway_process(port: int, prefix: str) -> None:
    """The real gateway app over RabbitMQ (prefix) with the Redis cache."""
    import trio

    from ..cache import open_cache
    from ..gateway import create_app, serve_app
    from ..settings import load_settings
    from ..workers import AmqpTransport

    settings = load_settings()

    async def main() -> None:
        async with AmqpTransport.connect(settings.amqp_url, prefix=prefix, name="bench-gateway") as transport:
            app = create_app(settings, transport, open_cache(settings), jwt_keys=settings.jwt_key)
            await serve_app(app, "127.0.0.1", port)

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

    trio.run(serve_app, app, "127.0.0.1", port)


if __name__ == "__main__":
    command()
