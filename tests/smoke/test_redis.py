"""Redis answers: set/get of a unique key through the real client."""

import uuid

import redis


def test_set_get(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    key = f"workup:smoke:{uuid.uuid4().hex}"
    try:
        assert client.set(key, "hello", ex=60)
        assert client.get(key) == b"hello"
    finally:
        client.delete(key)
        client.close()
    assert client.get(key) is None
