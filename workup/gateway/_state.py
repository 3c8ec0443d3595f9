"""What the gateway app holds for the duration of its life, reachable from any handler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quart import current_app
from quart_trio import QuartTrio

from ..cache import Cache
from ..settings import Settings
from ..transport import RpcClient
from ._notification_hub import NotificationHub
from ._limits import Throttle
from ._metrics import Metrics
from ._problems import Answer
from ._revocations import Revocations
from ._tokens import TokenService

__all__ = ["Gateway", "GatewayApp", "gateway"]


@dataclass
class Gateway:
    settings: Settings
    transport: RpcClient      # (+ EventSource and EventPublisher for notifications)
    cache: Cache
    tokens: TokenService
    revocations: Revocations
    hub: NotificationHub      # fan-out of the transport's events to WebSockets
    throttle: Throttle        # abuse limits of login and registration
    request_timeout: float = 10.0
    max_body: int = 1024 * 1024
    metrics: Metrics = field(default_factory=Metrics)
    openapi: bytes | None = None


class GatewayApp(QuartTrio):
    gw: Gateway

    async def make_response(self, result: Any) -> Any:
        """quart's, and a route's :class:`~workup.gateway._problems.Answer` as a Response."""
        if isinstance(result, Answer):
            return result.response()
        return await super().make_response(result)


def gateway() -> Gateway:
    return current_app.gw  # type: ignore[attr-defined]
