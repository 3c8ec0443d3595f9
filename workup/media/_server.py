"""Running the media server on hypercorn's trio worker."""

from __future__ import annotations

import logging
from typing import Awaitable, Callable

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from .._listening import Started, bind_address, listen
from ..settings import Settings, SettingsError
from ._app import create_app
from ._config import MediaConfig, media_config
from ._storage import sweep_stale

__all__ = ["serve_media", "prepare_storage"]

log = logging.getLogger("workup.media")


def _as_config(settings_or_config: Settings | MediaConfig) -> MediaConfig:
    if isinstance(settings_or_config, MediaConfig):
        return settings_or_config
    s = settings_or_config
    return media_config(s.data_dir, upload_user=s.upload_user, upload_password=s.upload_password)


def prepare_storage(config: MediaConfig) -> None:
    """Create the group directories and remove temporaries left by a crash."""
    try:
        for g in config.groups:
            group_dir = config.storage_path / g.name
            group_dir.mkdir(parents=True, exist_ok=True)
            sweep_stale(group_dir)
    except OSError as exc:
        raise SettingsError(f"media storage {config.storage_dir!r}: {exc.strerror}") from None


async def serve_media(
    settings_or_config: Settings | MediaConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8910,
    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled (or until ``shutdown_trigger`` returns, then shut down gracefully).

    ``task_status.started(port)`` reports the bound port (useful with ``port=0``) once the server
    accepts connections. A :class:`Settings` is turned into the default configuration for its data
    directory (storage in ``<data_dir>/media``, its ``upload_user``/``upload_password``).
    Unusable storage or an address that cannot be bound is a one-line :class:`SettingsError`.
    """
    config = _as_config(settings_or_config)
    app = wrap_app(create_app(config), HypercornConfig.wsgi_max_body_size, None)
    await trio.to_thread.run_sync(prepare_storage, config)
    hc = HypercornConfig()
    hc.bind = [bind_address(host, port)]
    hc.include_server_header = False
    hc.graceful_timeout = 5.0
    hc.accesslog = None
    hc.errorlog = logging.getLogger("workup.media.http")
    sockets, _, bound = listen(hc, "media server")

    def report() -> None:
        log.info("media server on %s:%d, storage %s", host, bound, config.storage_dir)
        task_status.started(bound)

    try:
        await worker_serve(app, hc, sockets=sockets, shutdown_trigger=shutdown_trigger, task_status=Started(report))
    finally:
        for sock in sockets.insecure_sockets:
            sock.close()
