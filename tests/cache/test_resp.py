"""The RESP codec (pure) and the direct client against a dead port."""

import socket

import pytest

from workup.cache import CacheUnavailable, RedisCache
from workup.cache._resp import (NEED_DATA, RespError, RespParser, RespProtocolError, encode_command,
    parse_redis_url)


def test_encode_command():
    assert encode_command("GET", "k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
    assert encode_command("SET", b"k", b"a\r\nb", 5) == b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n$1\r\n5\r\n"


@pytest.mark.parametrize("wire, value", [
    (b"+OK\r\n", "OK"),
    (b":42\r\n", 42),
    (b":-1\r\n", -1),
    (b"$5\r\nhe\r\nl\r\n", b"he\r\nl"),
    (b"$0\r\n\r\n", b""),
    (b"$-1\r\n", None),
    (b"*-1\r\n", None),
    (b"*0\r\n", []),
    (b"*3\r\n:1\r\n$1\r\nx\r\n*1\r\n+y\r\n", [1, b"x", ["y"]]),
])
def test_parse_whole_and_byte_by_byte(wire, value):
    p = RespParser()
    p.feed(wire)
    assert p.next() == value
    assert p.next() is NEED_DATA
    p = RespParser()
    for i in range(len(wire) - 1):
        p.feed(wire[i:i + 1])
        assert p.next() is NEED_DATA
    p.feed(wire[-1:])
    assert p.next() == value


def test_errors_are_values_and_replies_queue_up():
    p = RespParser()
    p.feed(b"-NOSCRIPT No matching script\r\n+OK\r\n")
    err = p.next()
    assert isinstance(err, RespError) and str(err).startswith("NOSCRIPT")
    assert p.next() == "OK"


def test_garbage_is_a_protocol_error():
    p = RespParser()
    p.feed(b"?what\r\n")
    with pytest.raises(RespProtocolError):
        p.next()


def test_parse_url():
    assert parse_redis_url("redis://127.0.0.1:6379/0") == ("127.0.0.1", 6379, 0, None, None)
    assert parse_redis_url("redis://u:p%40ss@h/3") == ("h", 6379, 3, "u", "p@ss")
    assert parse_redis_url("redis://:secret@h:1") == ("h", 1, 0, None, "secret")
    with pytest.raises(ValueError):
        parse_redis_url("rediss://h")


@pytest.mark.parametrize("driver", ["resp", "redis-py"])
async def test_unreachable_redis_is_cache_unavailable(driver):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # nothing listens once closed
    cache = RedisCache(f"redis://127.0.0.1:{port}/0", driver=driver)
    with pytest.raises(CacheUnavailable):
        await cache.get("k")
    with pytest.raises(CacheUnavailable):
        await cache.set("k", b"v", version=1, ttl=1)
    await cache.aclose()
