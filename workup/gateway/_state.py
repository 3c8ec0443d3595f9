"""What the gateway app holds for the duration of its life, reachable from any handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quart import current_app
from quart_trio import QuartTrio

from ..cache import Cache
from ..settings import Settings
from ._metrics import Metrics
from ._revocations import Revocations
from ._tokens import TokenService

__all__ = ["Gateway", "GatewayApp", "gateway"]


@dataclass
class Gateway:
    settings: Settings
    transport: Any            # RpcClient (+ EventSource for notifications)
    cache: Cache
    tokens: TokenService
    revocations: Revocations
    request_timeout: float = 10.0
    max_body: int = 1024 * 1024
    metrics: Metrics = field(default_factory=Metrics)
    hub: Any = None           # the notification hub, set by the app factory
    openapi: bytes | None = None


class GatewayApp(QuartTrio):
    gw: Gateway


def gateway() -> Gateway:
    return current_app.gw  # type: ignore[attr-defined]
