"""Shared bits of the runtime's broker tests: the broker URL and unique names."""

from __future__ import annotations

import secrets

from workup.testing import env_value

AMQP_URL = env_value("WORKUP_TEST_AMQP_URL")   # the dev node's test account by default


def unique_prefix() -> str:
    return f"t{secrets.token_hex(4)}"


async def delete_topology(transport, service: str = "echo") -> None:
    """Remove what a test's service instances declared under the transport's prefix."""
    await transport.delete_topology([service])
