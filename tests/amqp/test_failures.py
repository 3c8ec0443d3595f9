"""Malformed or silent peers (a fake trio TCP server) and a broker connection cut mid-stream:
clean typed errors, no hangs, and a reconnect that restores topology and loses no confirmed
publish."""

from __future__ import annotations

import os
import shutil

import pytest
import trio
from pamqp import commands as C

from workup import amqp
from workup.amqp import ConnectionParams, Properties

from ._fakes import Proxy, confirmed_in_queue, handshake, read_frames, serve
from ._wire import frame


def _params(port: int, **kw: object) -> ConnectionParams:
    return ConnectionParams(host="127.0.0.1", port=port, connect_timeout=5, **kw)  # type: ignore


async def _connect_fails(script, error: type[Exception], match: str) -> None:
    async with trio.open_nursery() as nursery:
        port = await serve(script, nursery)
        with trio.fail_after(3), pytest.raises(error, match=match):
            async with amqp.connect(_params(port)):
                pass  # pragma: no cover
        nursery.cancel_scope.cancel()


async def test_garbage_instead_of_start_is_a_protocol_error() -> None:
    async def script(stream: trio.SocketStream) -> None:
        await stream.receive_some(8)
        await stream.send_all(b"\x01\x00\x00\x00\x00\x00\x04\xde\xad\xbe\xef\x00")
        await trio.sleep(10)

    await _connect_fails(script, amqp.ProtocolError, "frame-end")


async def test_version_mismatch_is_a_protocol_error() -> None:
    async def script(stream: trio.SocketStream) -> None:
        await stream.receive_some(8)
        await stream.send_all(b"AMQP\x00\x00\x0a\x00")  # "I speak 0-10"
        await trio.sleep(10)

    await _connect_fails(script, amqp.ProtocolError, "0-9-1")


async def test_socket_closed_during_handshake() -> None:
    async def script(stream: trio.SocketStream) -> None:
        await stream.receive_some(8)
        await stream.aclose()

    await _connect_fails(script, amqp.ConnectionLost, "handshake")


async def test_malformed_frame_after_handshake_fails_waiters_and_reports_to_peer() -> None:
    closes: list = []

    async def script(stream: trio.SocketStream) -> None:
        await handshake(stream)
        await read_frames(stream, 1)  # channel.open
        # a channel.open-ok whose frame-end octet is wrong
        await stream.send_all(frame(C.Channel.OpenOk(), 1)[:-1] + b"\x00")
        closes.extend(await read_frames(stream, 1))

    async with trio.open_nursery() as nursery:
        port = await serve(script, nursery)
        with trio.fail_after(5):
            async with amqp.connect(_params(port), reconnect=True) as conn:
                with pytest.raises(amqp.ProtocolError, match="frame-end"):
                    await conn.channel()
                error = await conn.wait_closed()
                assert isinstance(error, amqp.ProtocolError)
                with pytest.raises(amqp.ProtocolError):  # dead for good, no reconnect loop
                    await conn.channel()
                assert conn.reconnects == 0
        nursery.cancel_scope.cancel()
    [(_, close)] = closes
    assert isinstance(close, C.Connection.Close) and close.reply_code == 501


async def test_silent_broker_is_detected_by_heartbeats() -> None:
    async def script(stream: trio.SocketStream) -> None:
        await handshake(stream, heartbeat=1)
        await trio.sleep(30)  # then never says anything again

    async with trio.open_nursery() as nursery:
        port = await serve(script, nursery)
        with trio.fail_after(6):
            async with amqp.connect(_params(port, heartbeat=1), reconnect=False) as conn:
                start = trio.current_time()
                error = await conn.wait_closed()
                assert isinstance(error, amqp.ConnectionLost) and "heartbeat" in str(error)
                assert 1.5 < trio.current_time() - start < 4
                with pytest.raises(amqp.ConnectionLost):
                    await conn.channel()
        nursery.cancel_scope.cancel()


async def test_pending_rpc_fails_when_connection_drops(amqp_url: str, name: str) -> None:
    p = amqp.parse_url(amqp_url)
    proxy = Proxy(p.host, p.port)
    async with trio.open_nursery() as nursery:
        port = await serve(proxy.handle, nursery)
        params = ConnectionParams(host="127.0.0.1", port=port, username=p.username,
                                  password=p.password, virtual_host=p.virtual_host)
        async with amqp.connect(params, name="test-rpc-drop") as conn:
            ch = await conn.channel()
            await ch.declare_queue(name, auto_delete=True)
            rpc = await amqp.RpcClient.open(conn)
            with trio.fail_after(10):
                async with trio.open_nursery() as calls:
                    async def call() -> None:
                        with pytest.raises(amqp.ConnectionLost):
                            await rpc.call(name, b"x", timeout=30)
                    calls.start_soon(call)
                    await trio.sleep(0.3)
                    proxy.kill()
                # after the reconnect, nobody answers: a timeout, never a hang
                with pytest.raises(amqp.RpcTimeout):
                    await rpc.call(name, b"y", timeout=0.5)
                # and once a server answers, replies reach us on the restored reply consumer
                async with amqp.connect(amqp_url, name="test-rpc-drop-server") as server:
                    server_ch = await server.channel()
                    async with await server_ch.consume(name) as requests:
                        async with trio.open_nursery() as answering:
                            async def answer() -> None:
                                async for request in requests:
                                    await server_ch.reply(request, b"re:" + request.body)
                                    request.ack()
                            answering.start_soon(answer)
                            reply = await rpc.call(name, b"z", timeout=5)
                            assert reply.body == b"re:z"
                            answering.cancel_scope.cancel()
            assert conn.reconnects >= 1
        nursery.cancel_scope.cancel()


async def _close_by_rabbitmqctl(conn: amqp.Connection) -> None:
    """``rabbitmqctl close_connection`` of exactly this connection (never all of them: the
    broker is shared), which makes the broker send connection.close 320 CONNECTION_FORCED."""
    assert conn._stream is not None
    host, port = conn._stream.socket.getsockname()[:2]
    peer_host, peer_port = conn._stream.socket.getpeername()[:2]
    name = f"{host}:{port} -> {peer_host}:{peer_port}"
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is not on PATH: this test closes its own broker connection "
                    "with it (install rabbitmq-server: `bash ops/dev/services up`)")
    # the node ops/dev/services starts is workup@localhost, not rabbit@<host>
    env = dict(os.environ)
    if "RABBITMQ_NODENAME" not in env and os.path.exists("/var/lib/rabbitmq/workup/pid"):
        env["RABBITMQ_NODENAME"] = "workup@localhost"
    listing = await trio.run_process(["rabbitmqctl", "list_connections", "--silent", "pid",
                                      "name"], capture_stdout=True, capture_stderr=True, env=env)
    pids = [line.split("\t")[0] for line in listing.stdout.decode().splitlines()
            if line.endswith("\t" + name)]
    assert len(pids) == 1, listing.stdout
    result = await trio.run_process(["rabbitmqctl", "close_connection", pids[0], "test"],
                                    capture_stdout=True, capture_stderr=True, check=False, env=env)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("cut", ["socket", "rabbitmqctl"])
async def test_reconnect_restores_topology_and_loses_no_confirmed_publish(
        amqp_url: str, name: str, cut: str) -> None:
    p = amqp.parse_url(amqp_url)
    proxy = Proxy(p.host, p.port)
    confirmed: list[int] = []
    via_exclusive: list[int] = []
    async with trio.open_nursery() as nursery:
        port = await serve(proxy.handle, nursery)
        params = ConnectionParams(host="127.0.0.1", port=port, username=p.username,
                                  password=p.password, virtual_host=p.virtual_host)
        if cut == "rabbitmqctl":
            params = amqp.parse_url(amqp_url)
        async with amqp.connect(params, name=f"test-reconnect-{cut}") as conn, \
                amqp.connect(amqp_url, name="test-reconnect-observer") as observer:
            ch = await conn.channel(confirms=True, prefetch=50)
            await ch.declare_exchange(name, "direct")
            await ch.declare_queue(name)  # survives the cut: it holds the confirmed messages
            await ch.bind_queue(name, name, "k")
            # an exclusive, server-named queue dies with the connection and must come back
            exclusive = (await ch.declare_queue("", exclusive=True)).name
            await ch.bind_queue(exclusive, name, "k")
            consumer = await ch.consume(exclusive, no_ack=True)

            async def collect() -> None:
                async for delivery in consumer:
                    via_exclusive.append(int(delivery.body))

            nursery.start_soon(collect)

            cut_done = trio.Event()

            async def publish() -> None:
                # until well after the reconnect (bounded), one confirmed publish at a time
                i = 0
                while i < 20_000 and not (cut_done.is_set() and conn.reconnects
                                          and confirmed[-1] >= 200 + cut_at):
                    await ch.publish(str(i).encode(), exchange=name, routing_key="k",
                                     mandatory=True, properties=Properties(delivery_mode=1))
                    confirmed.append(i)
                    i += 1

            with trio.fail_after(60):
                async with trio.open_nursery() as pub:
                    pub.start_soon(publish)
                    while len(confirmed) < 200:
                        await trio.sleep(0.01)
                    cut_at = len(confirmed)
                    if cut == "socket":
                        proxy.kill()
                    else:
                        await _close_by_rabbitmqctl(conn)
                    cut_done.set()
            total = len(confirmed)
            assert conn.reconnects >= 1
            assert confirmed == list(range(total))
            # every confirmed message is in the durable-by-name queue (duplicates allowed)
            obs = await observer.channel()
            assert await confirmed_in_queue(obs, name, total, timeout=10) == set(range(total))
            # the exclusive queue and its binding were declared again; the consumer followed
            assert via_exclusive and via_exclusive[-1] == total - 1
            await obs.delete_queue(name)
            await obs.delete_exchange(name)
        nursery.cancel_scope.cancel()
