"""``workup bench rpc``: what the worker runtime costs on top of the bare AMQP client.

1. Echo at 1, 16 and 64 calls in flight, twice in the same run: through the whole runtime
   (``workup worker echo``: envelope, consumer-count check, dispatch with the command's msgspec
   decoder, limiter, JSON reply body in a msgpack ``Reply``, decode on the client) and through the
   bare client (the foundation benchmark's ``ours`` cell: ``amqp.RpcClient`` against a consumer
   that ``reply()``s). Target: runtime ≥ 0.5× bare at 64 in flight.
2. A CPU-bound command (``echo.Burn``) against ``workup worker echo --processes 1`` and
   ``--processes 2`` in alternating rounds (best of each). Target: 2 processes ≥ 1.7× one.

Every part is its own OS process on the real broker (unique prefix): the worker supervisor and
its children, a load-generating client process (``_harness.closed_loop_trio``), and this
orchestrator, which reads the server processes' CPU time at the client's window marks.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from typing import Any

import click

from . import _harness as H
from ..transport.identity import identity_env

__all__ = ["command", "ratios", "TARGETS"]

TARGETS = {"runtime/bare at 64": 0.5, "processes 2/1 (cpu-bound)": 1.7}
TEXT = "x" * 80  # Echo(text, n): ~100 bytes in msgpack, ~95 in the JSON reply


# -- the load-generating client (`python -m workup.bench.rpc client URL PREFIX KIND C WARMUP DURATION ARG`)

async def _client(url: str, prefix: str, kind: str, c: int, warmup: float, duration: float,
                  arg: int) -> H.Result:
    from ..transport.envelope import Caller, reply_body
    from ..transport.rabbitmq import AmqpTransport
    from ..services.echo import Burn, Echo

    caller = Caller("bench", "CLIENT")
    command, request = ("echo.Echo", Echo(TEXT, 1)) if kind == "echo" else ("echo.Burn", Burn(arg))
    async with AmqpTransport.connect(url, prefix=prefix, name="bench-rpc-client") as t:
        async def call() -> None:
            reply_body(await t.call(command, request, caller=caller, timeout=60))

        return await H.closed_loop_trio(kind, call, c, warmup=warmup, duration=duration,
                                        on_mark=lambda phase: print("MARK", phase, flush=True))


# -- orchestration -----------------------------------------------------------------------------

def _tree_cpu(pid: int) -> float:
    import psutil
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return float("nan")
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class _Worker:
    """``workup worker echo`` under a unique prefix; ready once its processes consume."""

    def __init__(self, url: str, prefix: str, processes: int, concurrency: int, log: Any) -> None:
        self.env = dict(os.environ, WORKUP_AMQP_URL=url, WORKUP_AMQP_PREFIX=prefix,
                        WORKUP_LOG_LEVEL="WARNING", WORKUP_DATA_DIR=tempfile.mkdtemp(prefix="workup-bench-"),
                        **identity_env())   # the client processes sign with the same keys
        self.env.pop("WORKUP_PAYMENTS_POSTGRES_URL", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workup", "worker", "echo", "--processes", str(processes),
             "--concurrency", str(concurrency), "--grace", "5"],
            env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        import psutil
        deadline = time.monotonic() + 60
        while len(psutil.Process(self.proc.pid).children()) < processes or not self._consuming(url, prefix, processes):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise click.ClickException("the echo worker did not start")
            time.sleep(0.2)

    @staticmethod
    def _consuming(url: str, prefix: str, n: int) -> bool:
        import trio

        from ..transport.rabbitmq import AmqpTransport

        async def count() -> int:
            async with AmqpTransport.connect(url, prefix=prefix, name="bench-probe") as t:
                return await t.consumer_count("echo")
        return trio.run(count) >= n

    def stop(self) -> None:
        from ..cli.gateway import stop_processes

        stop_processes([self.proc], timeout=20)


def _runtime_cell(url: str, prefix: str, worker: _Worker, name: str, kind: str, c: int,
                  warmup: float, duration: float, arg: int) -> dict[str, Any]:
    client = subprocess.Popen(
        [sys.executable, "-m", __name__, "client", url, prefix, kind, str(c), str(warmup),
         str(duration), str(arg)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=worker.env)
    assert client.stdout is not None
    cpu: dict[str, float] = {}
    result: dict[str, Any] | None = None
    for raw in client.stdout:
        line = raw.decode().strip()
        if line.startswith("MARK "):
            cpu[line[5:]] = _tree_cpu(worker.proc.pid)
        elif line.startswith("RESULT "):
            result = json.loads(line[7:])
    client.wait(30)
    if result is None:
        raise click.ClickException(f"the {name} client at {c} in flight failed (exit {client.returncode})")
    result["name"] = name
    if "start" in cpu and "end" in cpu and result["calls"]:
        result["server_cpu_us_per_call"] = round((cpu["end"] - cpu["start"]) / result["calls"] * 1e6, 1)
    return result


def _cleanup(url: str, prefix: str) -> None:
    import trio

    from ..transport.rabbitmq import AmqpTransport

    async def run() -> None:
        async with AmqpTransport.connect(url, prefix=prefix, name="bench-cleanup") as t:
            await t.delete_topology(["echo"])
    trio.run(run)


def ratios(results: list[dict[str, Any]]) -> dict[str, float]:
    by = {(r["name"], r["in_flight"]): r["calls_per_s"] for r in results}
    out: dict[str, float] = {}
    for (name, level), rate in sorted(by.items(), key=lambda kv: kv[0][1]):
        bare = by.get(("bare client RPC", level))
        if name == "runtime echo" and bare:
            out[f"runtime/bare at {level}"] = round(rate / bare, 2)
    one = next((r["calls_per_s"] for r in results if r["name"].endswith("--processes 1")), 0)
    two = next((r["calls_per_s"] for r in results if r["name"].endswith("--processes 2")), 0)
    if one:
        out["processes 2/1 (cpu-bound)"] = round(two / one, 2)
    return out


@click.command(name="rpc")
@click.option("--amqp-url", default=H.server_default("amqp_url", H.AMQP_DEV),
              show_default="WORKUP_AMQP_URL or the loopback broker", help="broker")
@click.option("--in-flight", "levels", default="1,16,64", show_default=True,
              help="comma-separated calls in flight for the echo")
@click.option("--warmup", type=click.FloatRange(0, 600), default=1.0, show_default=True)
@click.option("--duration", type=click.FloatRange(0.1, 3600), default=4.0, show_default=True)
@click.option("--burn", type=click.IntRange(1000, 10**9), default=100_000, show_default=True,
              help="loop iterations of one CPU-bound call")
@click.option("--cpu-in-flight", type=click.IntRange(1, 1024), default=16, show_default=True)
@click.option("--cpu-rounds", type=click.IntRange(1, 20), default=3, show_default=True,
              help="alternating rounds of 1 and 2 processes; the best of each is reported")
@click.option("--skip-cpu", is_flag=True, help="only the echo part")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None,
              help="where to write the results (default perf/results/rpc-<UTC time>.json)")
@H.check_option
def command(amqp_url: str, levels: str, warmup: float, duration: float, burn: int,
            cpu_in_flight: int, cpu_rounds: int, skip_cpu: bool, json_path: str | None, check: bool) -> None:
    """Runtime echo vs the bare client's RPC; CPU-bound calls with 1 vs 2 processes."""
    from . import amqp as amqp_bench

    try:
        in_flight = [int(x) for x in levels.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"in-flight levels must be whole numbers, got {levels!r}") from None
    if not in_flight or min(in_flight) < 1:
        raise click.BadParameter("in-flight levels must be positive")
    prefix = f"benchrpc{secrets.token_hex(3)}"
    before = H.machine()
    results: list[dict[str, Any]] = []
    log = tempfile.NamedTemporaryFile("ab", prefix="workup-bench-rpc-", suffix=".log", delete=False)
    try:
        worker = _Worker(amqp_url, prefix, 1, 64, log)
        try:
            for c in in_flight:
                click.echo(f"  echo at {c} in flight ...", err=True)
                bare = amqp_bench._cell("ours", amqp_url, c, warmup, duration)
                bare["name"] = "bare client RPC"
                results.append(bare)
                results.append(_runtime_cell(amqp_url, prefix, worker, "runtime echo", "echo", c,
                                             warmup, duration, 0))
        finally:
            worker.stop()
        if not skip_cpu:
            # both workers stay up (own prefixes, idle when not measured) and the rounds
            # alternate, so a burst of load from elsewhere on the box hits both sides alike
            workers = {n: _Worker(amqp_url, f"{prefix}p{n}", n, 8, log) for n in (1, 2)}
            try:
                rounds: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
                for r in range(cpu_rounds):
                    for n in (1, 2):
                        click.echo(f"  cpu-bound with --processes {n}, round {r + 1} ...", err=True)
                        rounds[n].append(_runtime_cell(
                            amqp_url, f"{prefix}p{n}", workers[n], f"cpu-bound Burn, --processes {n}",
                            "burn", cpu_in_flight, warmup, duration, burn))
                for n in (1, 2):  # best of the rounds: the least disturbed one
                    best = max(rounds[n], key=lambda x: x["calls_per_s"])
                    best["rounds_calls_per_s"] = [x["calls_per_s"] for x in rounds[n]]
                    results.append(best)
            finally:
                for w in workers.values():
                    w.stop()
                for n in (1, 2):
                    _cleanup(amqp_url, f"{prefix}p{n}")
    finally:
        _cleanup(amqp_url, prefix)
        log.close()
    rows = [(r["name"], r["in_flight"], r["calls_per_s"], r["p50_ms"], r["p99_ms"], r["errors"],
             r.get("cpu_us_per_call"), r.get("server_cpu_us_per_call")) for r in results]
    click.echo(H.table(["run", "in flight", "calls/s", "p50 ms", "p99 ms", "errors",
                        "client CPU µs/call", "server CPU µs/call"], rows))
    found = ratios(results)
    # only the targets this run measured (--in-flight and --skip-cpu choose the cells)
    targets = [H.Target(name=k, value=found[k], limit=v) for k, v in TARGETS.items() if k in found]
    verdicts = {t.name: "met" if t.met else "MISSED" for t in targets}
    click.echo()
    click.echo(H.table(["ratio", "value"], list(found.items())))
    path = H.save_json("rpc", {
        "scenario": "rpc", "warmup_s": warmup, "duration_s": duration, "burn_iterations": burn,
        "machine_before": before, "machine_after": H.machine(), "results": results,
        "ratios": found, "targets": TARGETS, "verdicts": verdicts}, json_path)
    click.echo(f"\nsaved {path}\n")
    H.judge(targets, check)


def _child(argv: list[str]) -> None:
    import trio
    role, url, prefix, kind, c, warmup, duration, arg = argv
    assert role == "client"
    result = trio.run(_client, url, prefix, kind, int(c), float(warmup), float(duration), int(arg))
    print("RESULT", json.dumps(H.msgspec.to_builtins(result)), flush=True)


if __name__ == "__main__":
    _child(sys.argv[1:])
