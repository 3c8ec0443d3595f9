"""Shared bits of the runtime's broker tests: the broker URL and unique names."""

from __future__ import annotations

import os
import secrets

AMQP_URL = os.environ.get("WORKUP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def unique_prefix() -> str:
    return f"t{secrets.token_hex(4)}"


async def delete_topology(transport, service: str = "echo") -> None:
    """Remove what a test's service instances declared under the transport's prefix."""
    await transport.delete_topology([service])
