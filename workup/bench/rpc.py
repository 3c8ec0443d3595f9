"""``workup bench rpc``: what the worker runtime costs on top of the bare AMQP client.

1. An echo (~100-byte payload) at 1, 16 and 64 calls in flight, twice in the same run: through the
   whole runtime (``workup worker echo``: envelope, dispatch, limiter, msgpack reply, client-side
   decode) and through the bare client (``amqp.RpcClient`` against a minimal echo consumer that
   replies with the raw body). Target: runtime ≥ 0.5× bare at 64 in flight.
2. A CPU-bound command (``echo.Burn``) with ``--processes 1`` and ``--processes 2``.
   Target: 2 processes ≥ 1.7× one.

Servers run as separate OS processes on the real broker under a unique prefix; this process is
the load generator. Prints a table and (``--json PATH``) writes the figures.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any, Awaitable, Callable

import click

__all__ = ["command", "Result", "summarize"]

DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PAYLOAD = "x" * 80  # with the field names and msgpack framing: ~100 bytes on the wire


@dataclass
class Result:
    name: str
    in_flight: int
    calls: int
    errors: int
    seconds: float
    calls_per_s: float
    p50_ms: float
    p99_ms: float


def summarize(name: str, in_flight: int, latencies: list[float], errors: int, seconds: float) -> Result:
    lat = sorted(latencies)

    def pct(q: float) -> float:
        if not lat:
            return float("nan")
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2)
    return Result(name, in_flight, len(lat), errors, round(seconds, 2),
                  round(len(lat) / seconds, 1) if seconds else 0.0, pct(0.50), pct(0.99))


async def _drive(name: str, in_flight: int, call: Callable[[], Awaitable[Any]], *, warmup: float,
                 duration: float) -> Result:
    import trio

    latencies: list[float] = []
    errors = 0
    measuring = False
    clock = time.perf_counter
    stop_at = clock() + warmup + duration

    async def worker() -> None:
        nonlocal errors
        while True:
            t0 = clock()
            if t0 >= stop_at:
                return
            try:
                await call()
            except Exception:
                errors += 1
                continue
            if measuring:
                latencies.append(clock() - t0)

    async with trio.open_nursery() as n:
        for _ in range(in_flight):
            n.start_soon(worker)
        await trio.sleep(warmup)
        measuring = True
        started = clock()
    return summarize(name, in_flight, latencies, errors, clock() - started)


# -- servers (separate processes) -------------------------------------------------------------

async def _bare_server(url: str, queue: str) -> None:
    from .. import amqp

    async with amqp.connect(url, name="bench-bare-server") as conn:
        ch = await conn.channel(prefetch=256)
        await ch.declare_queue(queue, auto_delete=True)
        async with await ch.consume(queue) as consumer:
            print("READY", flush=True)
            async for d in consumer:
                await ch.reply(d, d.body)
                d.ack()


def _start(argv: list[str], env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _wait_consumers(transport: Any, service: str, n: int, timeout: float = 60.0) -> None:
    import trio

    with trio.fail_after(timeout):
        while await transport.consumer_count(service) < n:
            await trio.sleep(0.1)


async def _run(url: str, levels: list[int], warmup: float, duration: float, burn: int,
               cpu_in_flight: int, log: Any) -> list[Result]:
    import trio

    from .. import amqp
    from ..envelope import Caller, reply_body
    from ..workers._amqp import AmqpTransport
    from ..workers.echo import Burn, Echo

    prefix = f"bench{secrets.token_hex(3)}"
    env = dict(os.environ, WORKUP_AMQP_URL=url, WORKUP_AMQP_PREFIX=prefix, WORKUP_LOG_LEVEL="WARNING",
               WORKUP_DATA_DIR=tempfile.mkdtemp(prefix="workup-bench-"))
    env.pop("WORKUP_PAYMENTS_POSTGRES_URL", None)
    caller = Caller("bench", "CLIENT")
    results: list[Result] = []
    bare_queue = f"{prefix}.bare"
    bare_body = json.dumps({"text": PAYLOAD, "n": 1}).encode()
    procs = []
    async with AmqpTransport.connect(url, prefix=prefix, name="bench-client") as t:
        try:
            bare = _start([sys.executable, "-m", "workup.bench.rpc", "--bare-server", bare_queue], env, subprocess.PIPE)
            procs.append(bare)
            assert bare.stdout is not None
            await trio.to_thread.run_sync(bare.stdout.readline)
            worker = _start([sys.executable, "-m", "workup", "worker", "echo", "--processes", "1",
                             "--concurrency", "64"], env, log)
            procs.append(worker)
            await _wait_consumers(t, "echo", 1)
            rpc = await amqp.RpcClient.open(t.conn)
            echo = Echo(PAYLOAD, 1)

            async def bare_call() -> None:
                await rpc.call(bare_queue, bare_body, timeout=10)

            async def runtime_call() -> None:
                reply_body(await t.call("echo.Echo", echo, caller=caller, timeout=10))
            for level in levels:
                results.append(await _drive("bare client RPC", level, bare_call, warmup=warmup, duration=duration))
                results.append(await _drive("runtime echo", level, runtime_call, warmup=warmup, duration=duration))
            _stop(worker)

            burn_req = Burn(burn)

            async def burn_call() -> None:
                reply_body(await t.call("echo.Burn", burn_req, caller=caller, timeout=60))
            for n in (1, 2):
                worker = _start([sys.executable, "-m", "workup", "worker", "echo", "--processes", str(n),
                                 "--concurrency", "8"], env, log)
                procs.append(worker)
                await _wait_consumers(t, "echo", n)
                results.append(await _drive(f"cpu-bound Burn, --processes {n}", cpu_in_flight, burn_call,
                                            warmup=warmup, duration=duration))
                _stop(worker)
        finally:
            for p in procs:
                _stop(p)
            with trio.CancelScope(shield=True):
                ch = await t.conn.channel()
                for q in ("echo", "echo.dead"):
                    await ch.delete_queue(f"{prefix}.{q}")
                for x in ("dlx", "control.echo"):
                    await ch.delete_exchange(f"{prefix}.{x}")
                await ch.close()
    return results


def ratios(results: list[Result]) -> dict[str, float]:
    by = {(r.name, r.in_flight): r.calls_per_s for r in results}
    out = {}
    for (name, level), rate in by.items():
        if name == "runtime echo" and by.get(("bare client RPC", level)):
            out[f"runtime/bare at {level}"] = round(rate / by[("bare client RPC", level)], 2)
    one = next((r.calls_per_s for r in results if r.name.endswith("--processes 1")), 0)
    two = next((r.calls_per_s for r in results if r.name.endswith("--processes 2")), 0)
    if one:
        out["processes 2/1"] = round(two / one, 2)
    return out


def render(results: list[Result]) -> str:
    head = f"{'run':34} {'in flight':>9} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(f"{r.name:34} {r.in_flight:>9} {r.calls_per_s:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>6}")
    lines.append("")
    lines.extend(f"{k}: {v}x" for k, v in ratios(results).items())
    return "\n".join(lines)


@click.command(name="rpc")
@click.option("--amqp-url", envvar="WORKUP_AMQP_URL", default=DEFAULT_AMQP, show_default=True)
@click.option("--levels", default="1,16,64", show_default=True, help="calls in flight, comma-separated")
@click.option("--warmup", type=click.FloatRange(0, 60), default=1.0, show_default=True)
@click.option("--duration", type=click.FloatRange(0.5, 600), default=4.0, show_default=True)
@click.option("--burn", type=click.IntRange(1000, 10**9), default=200_000, show_default=True,
              help="iterations of the CPU-bound command")
@click.option("--cpu-in-flight", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="write results here")
@click.option("--bare-server", hidden=True, default=None)
def command(amqp_url: str, levels: str, warmup: float, duration: float, burn: int, cpu_in_flight: int,
            json_path: str | None, bare_server: str | None) -> None:
    """Runtime echo vs bare client RPC; CPU-bound throughput with 1 vs 2 processes."""
    import trio

    if bare_server:
        trio.run(_bare_server, amqp_url, bare_server)
        return
    try:
        level_list = [int(x) for x in levels.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"levels must be whole numbers, got {levels!r}") from None
    with tempfile.NamedTemporaryFile("ab", prefix="workup-bench-rpc-", suffix=".log", delete=False) as log:
        results = trio.run(_run, amqp_url, level_list, warmup, duration, burn, cpu_in_flight, log)
    click.echo(render(results))
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"results": [asdict(r) for r in results], "ratios": ratios(results)}, f, indent=2)


if __name__ == "__main__":
    command()
