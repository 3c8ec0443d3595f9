"""`workup media`: the media server on its own (static files, describe, authenticated uploads)."""

from __future__ import annotations

import logging
import signal
from functools import partial

import click

from ..settings import SettingsError
from ._options import settings_from


async def _until_signalled() -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


@click.command(name="media")
@click.option("--host", default=None, help="address to listen on (WORKUP_HOST, default 127.0.0.1)")
@click.option("--port", type=int, default=None, help="port to listen on (WORKUP_MEDIA_PORT, default 8910; 0 = any free port)")
@click.option("--storage-dir", default=None, type=click.Path(file_okay=False), help="where the group directories live (default <data-dir>/media)")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False), help="groups file (.json or .toml): name, mime_types, placeholder, resize")
@click.option("--max-upload-mb", type=float, default=None, help="largest accepted upload in MiB (default 25)")
@click.option("--data-dir", "data_dir", default=None, help="data directory (WORKUP_DATA_DIR)")
@click.option("--log-level", "log_level", default=None, help="DEBUG, INFO, WARNING, ERROR (WORKUP_LOG_LEVEL)")
def command(host: str | None, port: int | None, storage_dir: str | None, config_file: str | None,
            max_upload_mb: float | None, data_dir: str | None, log_level: str | None) -> None:
    """Serve static media with placeholders and accept authenticated uploads.

    Upload credentials come from UPLOAD_USER / UPLOAD_PASSWORD (or WORKUP_UPLOAD_USER /
    WORKUP_UPLOAD_PASSWORD); the server refuses to start without them.
    """
    import trio

    from ..media import DEFAULT_MAX_UPLOAD_MB, media_config, serve_media

    settings = settings_from(data_dir=data_dir, log_level=log_level, media_port=port, host=host)
    if not settings.upload_user or not settings.upload_password:
        raise SettingsError("media: set UPLOAD_USER and UPLOAD_PASSWORD (or WORKUP_UPLOAD_USER / WORKUP_UPLOAD_PASSWORD)")
    config = media_config(
        settings.data_dir,
        upload_user=settings.upload_user,
        upload_password=settings.upload_password,
        groups=config_file,
        max_upload_mb=DEFAULT_MAX_UPLOAD_MB if max_upload_mb is None else max_upload_mb,
        storage_dir=storage_dir,
    )
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve = partial(serve_media, config, host=settings.host, port=settings.media_port,
                    shutdown_trigger=_until_signalled)
    trio.run(serve)
