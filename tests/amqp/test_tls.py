"""``amqps://`` against a real RabbitMQ TLS listener (a private node with a test CA): a verified
round trip, clear one-line refusals for an unknown CA and a wrong host name, client
certificates when the broker requires them, and SASL EXTERNAL."""

from __future__ import annotations

import secrets

import pytest
import trio

from workup import amqp

from ._certs import write_ca_and_server
from ._private_broker import PrivateBroker


@pytest.fixture(scope="module")
def tls_broker():
    b = PrivateBroker(tls=True)
    try:
        b.start()
        yield b
    finally:
        b.remove()


def _url(b: PrivateBroker, **options: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"amqps://guest:guest@127.0.0.1:{b.tls_port}/?{query}"


async def test_verified_round_trip_over_tls(tls_broker, name) -> None:
    async with amqp.connect(_url(tls_broker, cacertfile=str(tls_broker.ca_file)), name="test-tls") as conn:
        assert isinstance(conn._stream, trio.SSLStream)
        assert conn._stream.version() in ("TLSv1.2", "TLSv1.3")
        ch = await conn.channel(confirms=True)
        await ch.declare_queue(name, auto_delete=True)
        async with await ch.consume(name) as deliveries:
            await ch.publish(b"over tls" * 1000, routing_key=name)   # several TLS records
            with trio.fail_after(10):
                async for delivery in deliveries:
                    assert delivery.body == b"over tls" * 1000
                    delivery.ack()
                    break


async def test_server_name_indication_names_the_certificate_host(tls_broker) -> None:
    url = _url(tls_broker, cacertfile=str(tls_broker.ca_file), server_name_indication="localhost")
    async with amqp.connect(url, name="test-tls-sni") as conn:
        assert conn._stream.server_hostname == "localhost"


async def test_unknown_ca_is_a_one_line_refusal(tls_broker, tmp_path) -> None:
    other_ca, _, _ = write_ca_and_server(tmp_path, "localhost", ca_name="someone else's CA")
    with trio.fail_after(20), pytest.raises(amqp.ConnectionLost) as exc:
        async with amqp.connect(_url(tls_broker, cacertfile=str(other_ca), connect_timeout="5")):
            pass  # pragma: no cover
    message = str(exc.value)
    assert "TLS handshake" in message and "certificate verify failed" in message and "\n" not in message


async def test_wrong_host_name_is_refused(tls_broker) -> None:
    url = _url(tls_broker, cacertfile=str(tls_broker.ca_file), server_name_indication="broker.example")
    with trio.fail_after(20), pytest.raises(amqp.ConnectionLost, match="TLS handshake.*(hostname|match)"):
        async with amqp.connect(url):
            pass  # pragma: no cover


async def test_verify_none_accepts_any_certificate(tls_broker) -> None:
    async with amqp.connect(_url(tls_broker, verify="verify_none"), name="test-tls-noverify") as conn:
        ch = await conn.channel()
        await ch.declare_queue("", exclusive=True)


def test_missing_ca_file_is_a_clear_error() -> None:
    from workup.amqp._tls import client_context
    with pytest.raises(ValueError, match="cannot load the certificate files"):
        client_context(amqp.parse_url("amqps://h/?cacertfile=/nonexistent/ca.pem"))


@pytest.fixture(scope="module")
def mtls_broker():
    b = PrivateBroker(tls=True, client_certs=True)
    try:
        b.start()
        yield b
    finally:
        b.remove()


async def test_client_certificate_when_the_broker_requires_one(mtls_broker, name) -> None:
    ca = str(mtls_broker.ca_file)
    with trio.fail_after(20), pytest.raises(amqp.ConnectionLost) as exc:   # no certificate: refused
        async with amqp.connect(_url(mtls_broker, cacertfile=ca, connect_timeout="5"), reconnect=False):
            pass  # pragma: no cover
    # the broker's TLS alert ("certificate required"), or a reset or EOF when its close beats our
    # read: the reason varies, the answer does not (one line naming the handshake, no traceback)
    message = str(exc.value)
    assert "handshake" in message and "\n" not in message
    url = _url(mtls_broker, cacertfile=ca, certfile=str(mtls_broker.dir / "client.pem"),
               keyfile=str(mtls_broker.dir / "client.key"))
    async with amqp.connect(url, name="test-mtls") as conn:
        ch = await conn.channel()
        await ch.declare_queue(name, auto_delete=True)


@pytest.fixture(scope="module")
def external_broker():
    b = PrivateBroker(tls=True, external=True)
    try:
        b.start()
        b.ctl("add_user", "workup-client", secrets.token_hex(24))   # the certificate's CN (hex: rabbitmqctl reads a leading "-" as an option)
        b.ctl("set_permissions", "-p", "/", "workup-client", ".*", ".*", ".*")
        yield b
    finally:
        b.remove()


async def test_sasl_external_logs_in_as_the_certificate_name(external_broker, name) -> None:
    cert = f"certfile={external_broker.dir / 'client.pem'}&keyfile={external_broker.dir / 'client.key'}"
    url = (f"amqps://127.0.0.1:{external_broker.tls_port}/?cacertfile={external_broker.ca_file}&{cert}"
           "&auth_mechanism=external")
    async with amqp.connect(url, name="test-external") as conn:
        assert conn.params.auth_mechanism == "EXTERNAL"
        ch = await conn.channel()
        await ch.declare_queue(name, auto_delete=True)
        # the broker knows this connection as the certificate's user (no password was sent)
        listing = await trio.to_thread.run_sync(external_broker.ctl, "list_connections", "--silent",
                                                "user", "auth_mechanism", "client_properties")
        [line] = [x for x in listing.splitlines() if "test-external" in x]
        assert line.split("\t")[:2] == ["workup-client", "EXTERNAL"]
