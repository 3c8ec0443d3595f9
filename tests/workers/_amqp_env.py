"""Shared bits of the runtime's broker tests: the broker URL and unique names."""

from __future__ import annotations

import os
import secrets

AMQP_URL = os.environ.get("WORKUP_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def unique_prefix() -> str:
    return f"t{secrets.token_hex(4)}"


async def delete_topology(transport, service: str = "echo") -> None:
    """Remove what a test's service instances declared under the transport's prefix."""
    ch = await transport.conn.channel()
    for q in (service, f"{service}.dead"):
        await ch.delete_queue(f"{transport.prefix}.{q}")
    for x in ("dlx", "events", f"control.{service}"):
        await ch.delete_exchange(f"{transport.prefix}.{x}")
    await ch.close()
