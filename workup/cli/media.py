"""`workup media`: the media server on its own (static files, describe, authenticated uploads)."""

from __future__ import annotations

import signal
from functools import partial

import click

from ..settings import SettingsError
from ..logs import configure_logging
from ._options import settings_from, settings_options


async def _until_signalled() -> None:
    import trio

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


@click.command(name="media")
@settings_options("host")
# here --port is the media server's own port: the media_port knob, under the flag this role expects
@click.option("--port", "media_port", type=int, default=None,
              help="port to listen on (WORKUP_MEDIA_PORT, default 8910; 0 = any free port)")
@click.option("--storage-dir", default=None, type=click.Path(file_okay=False), help="where the group directories live (default <data-dir>/media)")
@click.option("--config", "config_file", default=None, type=click.Path(dir_okay=False), help="groups file (.json or .toml): name, mime_types, placeholder, resize")
@click.option("--max-upload-mb", type=float, default=None, help="largest accepted upload in MiB (default 25)")
@settings_options("data_dir", "log_level", "log_format")
def command(storage_dir: str | None, config_file: str | None, max_upload_mb: float | None,
            **flags: object) -> None:
    """Serve static media with placeholders and accept authenticated uploads.

    Upload credentials come from UPLOAD_USER / UPLOAD_PASSWORD (or WORKUP_UPLOAD_USER /
    WORKUP_UPLOAD_PASSWORD); the server refuses to start without them.
    """
    import trio

    from ..media import DEFAULT_MAX_UPLOAD_MB, media_config, serve_media

    settings = settings_from(**flags)
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
    configure_logging("media", level=settings.log_level, fmt=settings.log_format)
    serve = partial(serve_media, config, host=settings.host, port=settings.media_port,
                    shutdown_trigger=_until_signalled)
    trio.run(serve)
