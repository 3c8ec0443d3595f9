"""``workup bench amqp``: RPC over RabbitMQ, our client against aiormq and aio-pika.

An echo of a ~100-byte JSON object over direct reply-to, at 1, 16 and 64 calls in flight. For
every (peer, in-flight) cell a fresh server process and a fresh client process run on the
same broker (cells ordered by in-flight level, peers interleaved); the client keeps *c* calls
in flight for a warm-up and then a measure window (``_harness.closed_loop_*``); this process
only orchestrates and reads CPU times.

Peers (those of the reference RPC benchmark this one repeats):
- ``ours``: ``workup.amqp`` (``RpcClient`` / a consumer that ``reply()``s and acks);
- ``aiormq``: hand-written direct reply-to on aiormq, confirms off, one publish + one ack per
  call;
- ``aio-pika``: ``aio_pika.patterns.JsonRPC`` with its defaults (``connect_robust``, confirms on).

Targets (issue 2): at 64 in flight ours ≥ 4× aiormq and ≥ 5× aio-pika; at 1 in flight our
p50 ≤ 0.6× aio-pika's.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from typing import Any

import click

from . import _harness as H

__all__ = ["command"]

PEERS = ("ours", "aiormq", "aio-pika")
PAYLOAD = {"id": 123456, "method": "echo", "user": "user-0042", "ts": 1700000000.123,
           "data": "abcdefghijklmn"}
BODY = json.dumps(PAYLOAD).encode()  # 101 bytes
REPLY_TO = "amq.rabbitmq.reply-to"
URL_ENV = "WORKUP_BENCH_AMQP_URL"  # how the orchestrator hands the broker URL to its children
TARGETS = {"ours/aiormq at 64": 4.0, "ours/aio-pika at 64": 5.0,
           "ours p50 / aio-pika p50 at 1 (at most)": 0.6}


# -- servers (`python -m workup.bench.amqp server PEER QUEUE`, URL in $WORKUP_BENCH_AMQP_URL) --

async def _ours_server(url: str, queue: str) -> None:
    from workup import amqp

    async with amqp.connect(url, name="bench-amqp-server") as conn:
        ch = await conn.channel(prefetch=256)
        await ch.declare_queue(queue, auto_delete=True)
        async with await ch.consume(queue) as consumer:
            print("READY", flush=True)
            async for delivery in consumer:
                await ch.reply(delivery, json.dumps(json.loads(delivery.body)).encode())
                delivery.ack()


async def _aiormq_server(url: str, queue: str) -> None:
    import asyncio

    import aiormq
    from pamqp.commands import Basic

    conn = await aiormq.connect(url)
    ch = await conn.channel(publisher_confirms=False)
    await ch.basic_qos(prefetch_count=256)
    await ch.queue_declare(queue, auto_delete=True)

    async def on_message(msg: Any) -> None:
        props = msg.header.properties
        await ch.basic_publish(json.dumps(json.loads(msg.body)).encode(),
                               routing_key=props.reply_to,
                               properties=Basic.Properties(correlation_id=props.correlation_id))
        await ch.basic_ack(msg.delivery.delivery_tag)

    await ch.basic_consume(queue, on_message)
    print("READY", flush=True)
    await asyncio.Event().wait()


async def _aiopika_server(url: str, queue: str) -> None:
    import asyncio

    import aio_pika
    from aio_pika.patterns import JsonRPC

    conn = await aio_pika.connect_robust(url)
    ch = await conn.channel()
    await ch.set_qos(prefetch_count=256)
    rpc = await JsonRPC.create(ch)

    async def echo(**kwargs: Any) -> Any:
        return kwargs

    await rpc.register(queue, echo, auto_delete=True)
    print("READY", flush=True)
    await asyncio.Event().wait()


# -- clients (`python -m workup.bench.amqp client PEER QUEUE C WARMUP DURATION`) ----------------

async def _ours_client(url: str, queue: str, c: int, warmup: float,
                       duration: float) -> H.Result:
    from workup import amqp

    async with amqp.connect(url, name="bench-amqp-client") as conn:
        rpc = await amqp.RpcClient.open(conn)

        async def call() -> None:
            reply = await rpc.call(queue, BODY, timeout=10)
            json.loads(reply.body)

        return await H.closed_loop_trio("ours", call, c, warmup=warmup, duration=duration,
                                        on_mark=H.mark)


async def _aiormq_client(url: str, queue: str, c: int, warmup: float,
                         duration: float) -> H.Result:
    import asyncio
    import itertools

    import aiormq
    from pamqp.commands import Basic

    loop = asyncio.get_running_loop()
    conn = await aiormq.connect(url)
    ch = await conn.channel(publisher_confirms=False)
    futures: dict[str, asyncio.Future[bytes]] = {}
    ids = itertools.count()

    async def on_reply(msg: Any) -> None:
        future = futures.pop(msg.header.properties.correlation_id, None)
        if future is not None and not future.done():
            future.set_result(msg.body)

    await ch.basic_consume(REPLY_TO, on_reply, no_ack=True)

    async def call() -> None:
        cid = str(next(ids))
        future = futures[cid] = loop.create_future()
        await ch.basic_publish(BODY, routing_key=queue, properties=Basic.Properties(
            correlation_id=cid, reply_to=REPLY_TO))
        json.loads(await asyncio.wait_for(future, 10))

    result = await H.closed_loop_asyncio("aiormq", call, c, warmup=warmup, duration=duration,
                                         on_mark=H.mark)
    await conn.close()
    return result


async def _aiopika_client(url: str, queue: str, c: int, warmup: float,
                          duration: float) -> H.Result:
    import aio_pika
    from aio_pika.patterns import JsonRPC

    conn = await aio_pika.connect_robust(url)
    ch = await conn.channel()
    rpc = await JsonRPC.create(ch)

    async def call() -> None:
        await rpc.call(queue, kwargs=PAYLOAD)

    result = await H.closed_loop_asyncio("aio-pika", call, c, warmup=warmup,
                                         duration=duration, on_mark=H.mark)
    await conn.close()
    return result


def _child(argv: list[str]) -> None:
    try:
        _run_child(argv)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # one line for the orchestrator's user, not a traceback
        print(f"workup.bench.amqp {' '.join(argv[:2])}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        sys.exit(1)


def _run_child(argv: list[str]) -> None:
    import logging
    for noisy in ("aio_pika", "aiormq"):  # their warnings when in-flight calls are cut off
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    role, peer, queue, *rest = argv
    url = os.environ[URL_ENV]
    if peer == "ours":
        import trio
        if role == "server":
            trio.run(_ours_server, url, queue)
        else:
            result = trio.run(_ours_client, url, queue, int(rest[0]), float(rest[1]),
                              float(rest[2]))
            H.emit_result(result)
        return
    import asyncio
    servers = {"aiormq": _aiormq_server, "aio-pika": _aiopika_server}
    clients = {"aiormq": _aiormq_client, "aio-pika": _aiopika_client}
    if role == "server":
        asyncio.run(servers[peer](url, queue))
    else:
        result = asyncio.run(clients[peer](url, queue, int(rest[0]), float(rest[1]),
                                           float(rest[2])))
        H.emit_result(result)


# -- orchestration -----------------------------------------------------------------------------

def _cell(peer: str, url: str, c: int, warmup: float, duration: float) -> dict[str, Any]:
    queue = f"bench_amqp_{peer.replace('-', '')}_{secrets.token_hex(4)}"
    cpu: dict[str, float] = {}
    try:
        env = {URL_ENV: url}  # not in argv: it may hold a password
        with H.Server(__name__, "server", peer, queue, env=env) as server:
            time.sleep(0.3)  # let the server settle
            result = H.run_client(__name__, "client", peer, queue, str(c), str(warmup),
                                  str(duration), env=env, timeout=warmup + duration + 60,
                                  on_mark=lambda phase: cpu.update({phase: server.cpu_seconds()}))
    except RuntimeError as exc:
        raise click.ClickException(f"{peer} at {c} in flight failed: {exc}") from None
    if "start" in cpu and "end" in cpu and result["calls"]:
        result["server_cpu_us_per_call"] = round(
            (cpu["end"] - cpu["start"]) / result["calls"] * 1e6, 1)
    return result


def ratios(results: list[dict[str, Any]]) -> dict[str, float]:
    by = {(r["name"], r["in_flight"]): r for r in results}
    out: dict[str, float] = {}

    def ratio(key: str, a: tuple[str, int], b: tuple[str, int], field: str) -> None:
        if a in by and b in by and by[b][field]:
            out[key] = round(by[a][field] / by[b][field], 2)

    ratio("ours/aiormq at 64", ("ours", 64), ("aiormq", 64), "calls_per_s")
    ratio("ours/aio-pika at 64", ("ours", 64), ("aio-pika", 64), "calls_per_s")
    ratio("ours p50 / aio-pika p50 at 1 (at most)", ("ours", 1), ("aio-pika", 1), "p50_ms")
    return out


def _check_broker(url: str) -> None:
    import socket

    from workup.amqp import parse_url
    p = parse_url(url)
    try:
        socket.create_connection((p.host, p.port), timeout=3).close()
    except OSError as exc:
        raise click.ClickException(f"RabbitMQ is not reachable at {p.host}:{p.port} ({exc})")


@click.command(name="amqp")
@click.option("--amqp-url", default=H.server_default("amqp_url", H.AMQP_DEV),
              show_default="WORKUP_AMQP_URL or the loopback broker", help="broker")
@click.option("--in-flight", "levels", default="1,16,64", show_default=True,
              help="comma-separated calls in flight")
@click.option("--peers", default=",".join(PEERS), show_default=True,
              help="comma-separated subset of: " + ", ".join(PEERS))
@H.window_options("amqp")
@H.check_option
def command(amqp_url: str, levels: str, peers: str, warmup: float, duration: float,
            json_path: str | None, check: bool) -> None:
    """RPC echo calls/s and p50/p99 latency: ours vs aiormq vs aio-pika JsonRPC."""
    from workup.amqp import parse_url
    try:
        parse_url(amqp_url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--amqp-url") from None
    try:
        in_flight = [int(x) for x in levels.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"a comma-separated list of whole numbers, got {levels!r}",
                                 param_hint="--in-flight") from None
    chosen = [p.strip() for p in peers.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PEERS]
    if unknown or not chosen or not in_flight or min(in_flight) < 1:
        raise click.BadParameter(f"peers must be among {', '.join(PEERS)} and in-flight "
                                 f"levels positive integers")
    _check_broker(amqp_url)
    before = H.machine()
    results = []
    for c in in_flight:  # peers interleaved, so a noisy neighbour hits them alike
        for peer in chosen:
            click.echo(f"  {peer} at {c} in flight ...", err=True)
            results.append(_cell(peer, amqp_url, c, warmup, duration))
    results.sort(key=lambda r: (PEERS.index(r["name"]), r["in_flight"]))
    rows = [(r["name"], r["in_flight"], r["calls_per_s"], r["p50_ms"], r["p99_ms"],
             r["errors"], r.get("cpu_us_per_call"), r.get("server_cpu_us_per_call"))
            for r in results]
    click.echo(H.table(["peer", "in flight", "calls/s", "p50 ms", "p99 ms", "errors",
                        "client CPU µs/call", "server CPU µs/call"], rows))
    found = ratios(results)
    # only the targets this run measured (--in-flight and --peers choose the cells)
    targets = [H.Target(name=k, value=found[k], limit=v, at_most="at most" in k) for k, v in TARGETS.items()
               if k in found]
    click.echo()
    path = H.save_json("amqp", {
        "scenario": "amqp", "payload_bytes": len(BODY), "warmup_s": warmup,
        "duration_s": duration, "machine_before": before, "machine_after": H.machine(),
        "results": results, "ratios": found, "targets": TARGETS,
        "verdicts": {t.name: "met" if t.met else "MISSED" for t in targets}}, json_path)
    click.echo(f"saved {path}\n")
    H.judge(targets, check)


if __name__ == "__main__":
    _child(sys.argv[1:])
