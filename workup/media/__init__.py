"""The media server: static resources with placeholders, a describe API, authenticated uploads.

HTTP (binding contract: the "Media server" section of the REST contract; details in docs/media.md):

- ``GET|HEAD /static/<group>/<file>``: the stored file, or the group's placeholder with
  ``X-Placeholder: true`` when it is missing; ``ETag``, ``Last-Modified``, conditional GET (304),
  single byte ranges (206, 416); an unknown group 404; a name with a separator, ``..`` or NUL 400.
- ``GET /describe`` and ``GET /describe/<group>``.
- ``POST /upload/<group>``: HTTP Basic, multipart ``resource`` + ``filename``; the type is sniffed
  from the bytes, the name sanitised, the file streamed to disk and renamed into place; 201
  ``{success, path}``; 400, 401, 404, 408, 413 as problem+json.

Python API (what ``workup media`` and ``workup up`` use)::

    config = media_config(data_dir, upload_user=..., upload_password=...,
                          groups=None | [GroupConfig, ...] | "groups.toml",
                          max_upload_mb=25, storage_dir=None)   # storage: <data_dir>/media
    async with trio.open_nursery() as nursery:
        port = await nursery.start(partial(serve_media, config, host="127.0.0.1", port=8910))

``serve_media`` also takes a :class:`workup.settings.Settings` (its data directory and upload
credentials); it calls ``task_status.started(bound_port)`` once the server accepts connections.
Bad configuration is a one-line :class:`workup.settings.SettingsError`. ``create_app`` gives the
bare ASGI application (its group directories must exist: ``prepare_storage``).
"""

from ._app import create_app
from ._config import (
    DEFAULT_MAX_UPLOAD_MB,
    GroupConfig,
    MediaConfig,
    Resize,
    builtin_placeholder,
    default_groups,
    load_groups,
    media_config,
)
from ._server import prepare_storage, serve_media

__all__ = [
    "DEFAULT_MAX_UPLOAD_MB", "GroupConfig", "MediaConfig", "Resize",
    "builtin_placeholder", "create_app", "default_groups", "load_groups", "media_config",
    "prepare_storage", "serve_media",
]
