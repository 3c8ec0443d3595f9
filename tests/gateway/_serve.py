"""Run a gateway app on a free port for a test, with an httpx client on it."""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx
import trio

from workup.cache import MemoryCache
from workup.gateway import create_app, serve_app
from workup.settings import Settings

KEY = "test-signing-key-" + "x" * 24


@asynccontextmanager
async def served(app: Any) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with trio.open_nursery() as nursery:
        url = await nursery.start(serve_app, app)
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield client, url
        nursery.cancel_scope.cancel()


def make_app(transport: Any = None, cache: Any = None, *, blueprints: list = (), settings: Settings | None = None,
             **kw: Any) -> Any:
    app = create_app(settings or Settings(), transport, cache if cache is not None else MemoryCache(), jwt_keys=KEY, **kw)
    for bp in blueprints:
        app.register_blueprint(bp)
    return app
