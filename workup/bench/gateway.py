"""``workup bench gateway``: the gateway's hot path against a bare quart-trio endpoint.

Two servers, each its own process, both quart-trio apps on hypercorn's trio worker with the same
server configuration: the real gateway (with the users and payments services in process on the
in-process transport, SQLite stores in a temporary directory, the in-process cache, or Redis with
``--redis-url``) serving an authenticated ``GET /api/v1/users/me`` from the cache, and a bare app
whose one route returns a JSON body of the same size. The load generator is a third process: a
keep-alive HTTP/1.1 client of ``bench/http.py``, ``--connections`` connections each with one
request in flight (closed loop), warm-up then a measure window; the servers' CPU time is read at
the window's edges. Rounds alternate bare / gateway so drift hits both. Target (issue 4): the
cached GET ≥ 0.7× the bare endpoint.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import time

import click

from .http import Client
from ._harness import (Server, Target, check_option, closed_loop_trio, emit_result, judge, machine, mark,
                       run_client, save_json, table)

__all__ = ["command"]

ME = "/api/v1/users/me"
BARE = "/bare"
GATEWAY_OVER_BARE = 0.70   # issue 4's target: the cached gateway read keeps 70 % of bare throughput


# --- the load generator -------------------------------------------------------------------------

async def _load(host: str, port: int, path: str, token: str, connections: int,
                warmup: float, duration: float, name: str) -> None:
    # the bench's keep-alive client (``bench/http.py``; it opens a new connection after a
    # ``Connection: close``, as hypercorn sends after 1,000 requests), one per connection
    idle = [Client(f"http://{host}:{port}") for _ in range(connections)]

    async def call() -> None:
        client = idle.pop()
        try:
            status = (await client.request("GET", path, token=token or None)).status
        finally:
            idle.append(client)
        if status != 200:
            raise RuntimeError(f"HTTP {status}")

    result = await closed_loop_trio(name, call, connections, warmup=warmup, duration=duration, on_mark=mark)
    emit_result(result)


# --- the servers --------------------------------------------------------------------------------

async def _serve_gateway(port: int, redis_url: str | None) -> None:
    import trio

    from ..cache import open_cache
    from ..gateway import create_app, serve_app
    from ..gateway import settle_heap
    from ..settings import Settings
    from ..transport import LocalTransport
    from ..runtime import load_service, serve_service

    with tempfile.TemporaryDirectory(prefix="workup-bench-gw-") as data_dir:
        settings = Settings(data_dir=data_dir, redis_url=redis_url, control_key="bench-control-key-" + "x" * 16)
        transport = LocalTransport()
        async with trio.open_nursery() as nursery:
            for name in ("users", "payments"):
                await nursery.start(lambda task_status, name=name: serve_service(
                    load_service(name), settings, transport, grace=1.0, task_status=task_status))
            app = create_app(settings, transport, open_cache(settings), jwt_keys="bench-jwt-key-" + "k" * 24)
            await nursery.start(lambda task_status: serve_app(app, "127.0.0.1", port, task_status=task_status))
            settle_heap()
            print("READY", flush=True)
            await trio.sleep_forever()


async def _serve_bare(port: int, body_size: int) -> None:
    import trio
    from quart import Response
    from quart_trio import QuartTrio

    from ..gateway import serve_app
    from ..gateway import settle_heap

    app = QuartTrio("bare")
    payload = json.dumps({"userId": "0" * 32, "pad": "x" * max(0, body_size - 53)}).encode()

    @app.get(BARE)
    async def bare() -> Response:
        return Response(payload, content_type="application/json")

    async with trio.open_nursery() as nursery:
        await nursery.start(lambda task_status: serve_app(app, "127.0.0.1", port, task_status=task_status))
        settle_heap()   # the same server set-up as the gateway's
        print("READY", flush=True)
        await trio.sleep_forever()


def _child_main(argv: list[str]) -> None:
    import logging

    import trio

    logging.basicConfig(level=logging.WARNING)
    role, args = argv[0], argv[1:]
    if role == "serve-gateway":
        trio.run(_serve_gateway, int(args[0]), args[1] if len(args) > 1 and args[1] != "-" else None)
    elif role == "serve-bare":
        trio.run(_serve_bare, int(args[0]), int(args[1]))
    elif role == "load":
        host, port, path, token, conns, warmup, duration, name = args
        trio.run(_load, host, int(port), path, "" if token == "-" else token, int(conns),
                 float(warmup), float(duration), name)
    else:
        raise SystemExit(f"unknown role {role!r}")


# --- the scenario -------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(port: int) -> tuple[str, int]:
    """Register a client, read /me once (the users service fills the cache); the token and the
    cached body size."""
    import httpx

    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as http:
        r = http.post("/api/v1/users/clients/register",
                      json={"email": f"bench-{time.time_ns()}@example.com", "password": "bench-password-1",
                            "clientName": "Bench Ltd"})
        r.raise_for_status()
        token = r.json()["authToken"]
        headers = {"Authorization": f"Bearer {token}"}
        first = http.get(ME, headers=headers)
        first.raise_for_status()
        second = http.get(ME, headers=headers)
        assert second.content == first.content
        rpc_calls = _rpc_count(http.get("/metrics").text)
        http.get(ME, headers=headers)
        if _rpc_count(http.get("/metrics").text) != rpc_calls:
            raise click.ClickException("GET /api/v1/users/me is not served from the cache")
        return token, len(first.content)


def _rpc_count(metrics: str) -> int:
    total = 0
    for line in metrics.splitlines():
        if line.startswith('workup_rpc_duration_seconds_count{service="users"'):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


@click.command(name="gateway")
@click.option("--connections", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="keep-alive connections, one request in flight on each")
@click.option("--duration", type=click.FloatRange(0.5, 600), default=5.0, show_default=True, help="measure window (s)")
@click.option("--warmup", type=click.FloatRange(0, 60), default=1.0, show_default=True, help="warm-up (s)")
@click.option("--rounds", type=click.IntRange(1, 20), default=2, show_default=True,
              help="alternating bare/gateway rounds")
@click.option("--redis-url", default=None, help="cache in Redis instead of the in-process cache")
@click.option("--json", "json_path", default=None, help="where to save the results (default perf/results/)")
@check_option
def command(connections: int, duration: float, warmup: float, rounds: int, redis_url: str | None,
            json_path: str | None, check: bool) -> None:
    """Cached authenticated GET through the gateway vs a bare quart-trio JSON endpoint."""
    gw_port, bare_port = _free_port(), _free_port()
    with Server(__name__, "serve-gateway", str(gw_port), redis_url or "-", ready_timeout=60) as gateway:
        token, size = _prepare(gw_port)
        with Server(__name__, "serve-bare", str(bare_port), str(size)) as bare:
            rows, results = [], []
            for round_ in range(rounds):
                for name, server, port, path, tok in (("bare", bare, bare_port, BARE, "-"),
                                                      ("gateway", gateway, gw_port, ME, token)):
                    cpu: dict[str, float] = {}

                    def on_mark(phase: str, server: Server = server, cpu: dict[str, float] = cpu) -> None:
                        cpu[phase] = server.cpu_seconds()   # the server's CPU at the window's edges

                    result = run_client(__name__, "load", "127.0.0.1", str(port), path, tok, str(connections),
                                        str(warmup), str(duration), name, on_mark=on_mark,
                                        timeout=warmup + duration + 60)
                    server_cpu = cpu.get("end", 0.0) - cpu.get("start", 0.0)
                    result["server_cpu_us_per_call"] = (round(server_cpu / result["calls"] * 1e6, 1)
                                                        if result["calls"] else None)
                    result["round"] = round_ + 1
                    results.append(result)
                    rows.append([f"{name} (round {round_ + 1})", result["calls_per_s"], result["p50_ms"],
                                 result["p99_ms"], result["errors"], result["server_cpu_us_per_call"]])
    best = {n: max(r["calls_per_s"] for r in results if r["name"] == n) for n in ("bare", "gateway")}
    total = {n: sum(r["calls_per_s"] for r in results if r["name"] == n) for n in ("bare", "gateway")}
    ratio = round(total["gateway"] / total["bare"], 3) if total["bare"] else float("nan")
    click.echo(table(["target", "req/s", "p50 ms", "p99 ms", "errors", "server CPU µs/req"], rows))
    click.echo(f"\ncached GET {ME} / bare endpoint throughput: {ratio:.2f}x "
               f"(target >= {GATEWAY_OVER_BARE:.2f}; cache: {'Redis' if redis_url else 'in-process'}; "
               f"{connections} connections, body {size} bytes)")
    saved = save_json("gateway", {"machine": machine(), "connections": connections, "body_bytes": size,
                                 "cache": "redis" if redis_url else "memory", "ratio": ratio, "best": best,
                                 "results": results}, json_path)
    click.echo(f"saved {saved}\n")
    judge([Target(name=f"cached GET {ME} / bare, throughput", value=ratio, limit=GATEWAY_OVER_BARE)], check)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
