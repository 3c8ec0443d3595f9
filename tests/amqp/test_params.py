import pytest

from workup.amqp import ConnectionParams, parse_url


def test_defaults() -> None:
    assert parse_url("amqp://") == ConnectionParams()


def test_full_url() -> None:
    p = parse_url("amqp://us%40er:p%3Ass@rabbit.example:5673/work%2Fup?heartbeat=15"
                  "&frame_max=65536&channel_max=64&connection_timeout=2.5")
    assert (p.username, p.password, p.host, p.port, p.virtual_host) == (
        "us@er", "p:ss", "rabbit.example", 5673, "work/up")
    assert (p.heartbeat, p.frame_max, p.channel_max, p.connect_timeout) == (15, 65536, 64, 2.5)
    assert "p:ss" not in repr(p)


@pytest.mark.parametrize("url,vhost", [("amqp://h", "/"), ("amqp://h/", "/"),
                                       ("amqp://h/%2F", "/"), ("amqp://h/prod", "prod")])
def test_vhost(url: str, vhost: str) -> None:
    assert parse_url(url).virtual_host == vhost


@pytest.mark.parametrize("url,match", [
    ("http://h", "scheme"), ("amqp://h:99999", "port"), ("amqp://h?cacertfile=/ca.pem", "needs amqps"),
    ("amqps://h?verify=yes", "verify_peer or verify_none"), ("amqps://h?auth_mechanism=kerberos", "plain or external"),
    ("amqps://h?auth_mechanism=external", "client certificate"),
    ("amqp://h?heartbeat=x", "heartbeat"), ("amqp://h?bogus=1", "unknown"),
    ("amqp://h?heartbeat=-1", "negative"),
])
def test_bad_urls(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_url(url)


def test_amqps_url() -> None:
    p = parse_url("amqps://u:p@broker/?cacertfile=/ca.pem&certfile=/c.pem&keyfile=/k.pem"
                  "&server_name_indication=mq.example&verify=verify_peer")
    assert (p.tls, p.port, p.cacertfile, p.certfile, p.keyfile, p.server_name, p.verify) == \
        (True, 5671, "/ca.pem", "/c.pem", "/k.pem", "mq.example", True)
    assert parse_url("amqps://h:1234?verify=verify_none").verify is False
    assert parse_url("amqp://h").tls is False and "amqps://" in repr(parse_url("amqps://u:secret@h"))
    assert "secret" not in repr(parse_url("amqps://u:secret@h"))
    assert parse_url("amqps://h?auth_mechanism=EXTERNAL&certfile=/c.pem").auth_mechanism == "EXTERNAL"
    assert parse_url("amqp://h").auth_mechanism == "PLAIN"
