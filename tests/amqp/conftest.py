from __future__ import annotations

import socket
import uuid

import pytest

from workup.amqp import parse_url
from workup.testing import env_value

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
