from __future__ import annotations

import socket
import uuid

import pytest
import trio

from workup.amqp import parse_url
from workup.testing import env_value

from ._private_broker import PrivateBroker

AMQP_URL = env_value("WORKUP_TEST_AMQP_URL")   # the dev node's test account by default


@pytest.fixture
def amqp_url() -> str:
    """The real broker; unreachable is a failure with a clear message, never a skip."""
    p = parse_url(AMQP_URL)
    try:
        socket.create_connection((p.host, p.port), timeout=3).close()
    except OSError as exc:
        pytest.fail(f"RabbitMQ is not reachable at {p.host}:{p.port} ({exc}); start it with "
                    f"`bash ops/dev/services up` or set WORKUP_TEST_AMQP_URL")
    return AMQP_URL


@pytest.fixture
def name() -> str:
    """A unique queue/exchange name, so parallel runs on the shared broker never meet."""
    return f"test.amqp.{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def broker():
    """A private RabbitMQ node of the test's own, which it may SIGKILL and start again."""
    b = PrivateBroker()
    try:
        await trio.to_thread.run_sync(b.start)
        yield b
    finally:
        await trio.to_thread.run_sync(b.remove)
