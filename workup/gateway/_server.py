"""Serving the gateway app with hypercorn's trio worker."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

__all__ = ["serve_app", "hypercorn_config"]


def hypercorn_config(host: str, port: int, *, graceful_timeout: float = 5.0) -> Config:
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = 75
    config.accesslog = None          # the app writes its own structured access log
    config.errorlog = "-"
    config.include_server_header = False
    return config


async def serve_app(app: Any, host: str = "127.0.0.1", port: int = 0, *,
                    shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
                    graceful_timeout: float = 5.0,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled (or ``shutdown_trigger`` returns: then finish in-flight requests for
    at most ``graceful_timeout`` seconds). ``task_status.started`` gets the base URL."""
    config = hypercorn_config(host, port, graceful_timeout=graceful_timeout)

    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(app, config, shutdown_trigger=shutdown_trigger, task_status=task_status)

    async with trio.open_nursery() as nursery:
        binds = await nursery.start(run)
        task_status.started(binds[0])
