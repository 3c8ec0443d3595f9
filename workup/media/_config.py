"""Media server configuration: the storage directory, the groups, the upload limit and credentials."""

from __future__ import annotations

import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import msgspec

from ..settings import SettingsError
from ._sniff import SUPPORTED_TYPES

__all__ = [
    "DEFAULT_MAX_UPLOAD_MB", "Resize", "GroupConfig", "MediaConfig",
    "default_groups", "load_groups", "media_config", "builtin_placeholder",
]

DEFAULT_MAX_UPLOAD_MB = 25
_GROUP_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_MAX_SIDE = 10_000
# the built-in placeholder shipped for each group's main type
_BUILTIN = {"image/png": "icon.png", "image/jpeg": "photo.jpg", "application/pdf": "document.pdf"}
_BUILTIN_ANY_IMAGE = "icon.png"


class Resize(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Downscale uploaded images: ``fit`` keeps the aspect ratio inside width×height, ``cover``
    crops to exactly width×height. Images already within the box are stored untouched."""

    width: int
    height: int
    mode: Literal["fit", "cover"] = "fit"


class GroupConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    mime_types: list[str]
    placeholder: str | None = None  # a file path; None = the built-in one for the main type
    resize: Resize | None = None

    @property
    def mime_type(self) -> str:
        """The group's main type (the first listed)."""
        return self.mime_types[0]

    def placeholder_path(self) -> Path:
        return Path(self.placeholder) if self.placeholder else builtin_placeholder(self.mime_type)


class MediaConfig(msgspec.Struct, kw_only=True):
    """Everything the media server needs; checked on construction (a :class:`SettingsError` if bad)."""

    storage_dir: str
    upload_user: str
    upload_password: str
    groups: list[GroupConfig] = msgspec.field(default_factory=lambda: default_groups())
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024

    def __post_init__(self) -> None:
        if not self.upload_user or not self.upload_password:
            raise SettingsError("the media server needs UPLOAD_USER and UPLOAD_PASSWORD (or WORKUP_UPLOAD_USER / WORKUP_UPLOAD_PASSWORD)")
        if ":" in self.upload_user:
            raise SettingsError("UPLOAD_USER must not contain ':' (HTTP Basic separates user and password with it)")
        if self.max_upload_bytes <= 0:
            raise SettingsError(f"max upload size must be positive, got {self.max_upload_bytes} bytes")
        _check_groups(self.groups)

    def __repr__(self) -> str:  # never print the password
        return f"MediaConfig(storage_dir={self.storage_dir!r}, groups={[g.name for g in self.groups]}, max_upload_bytes={self.max_upload_bytes})"

    @property
    def storage_path(self) -> Path:
        return Path(self.storage_dir)

    def group(self, name: str) -> GroupConfig | None:
        return next((g for g in self.groups if g.name == name), None)


def builtin_placeholder(mime_type: str) -> Path:
    name = _BUILTIN.get(mime_type, _BUILTIN_ANY_IMAGE if mime_type.startswith("image/") else "document.pdf")
    return Path(str(resources.files(__package__).joinpath("placeholders", name)))


def default_groups() -> list[GroupConfig]:
    return [
        GroupConfig(name="icons", mime_types=["image/png"], resize=Resize(width=256, height=256)),
        GroupConfig(name="photos", mime_types=["image/jpeg", "image/png"], resize=Resize(width=1024, height=1024)),
        GroupConfig(name="resume", mime_types=["application/pdf"]),
        GroupConfig(name="attachments", mime_types=["application/pdf"]),
    ]


def _check_groups(groups: list[GroupConfig]) -> None:
    if not groups:
        raise SettingsError("media config: at least one group is needed")
    seen: set[str] = set()
    for g in groups:
        where = f"media group {g.name!r}"
        if not _GROUP_NAME.fullmatch(g.name):
            raise SettingsError(f"{where}: a group name is 1-64 of a-z, 0-9, '_', '-' (starting with a letter or digit)")
        if g.name in seen:
            raise SettingsError(f"{where}: defined twice")
        seen.add(g.name)
        if not g.mime_types:
            raise SettingsError(f"{where}: mime_types is empty")
        unknown = [t for t in g.mime_types if t not in SUPPORTED_TYPES]
        if unknown:
            raise SettingsError(f"{where}: unsupported MIME type {unknown[0]!r} (supported: {', '.join(sorted(SUPPORTED_TYPES))})")
        if g.resize is not None:
            if not all(t.startswith("image/") for t in g.mime_types):
                raise SettingsError(f"{where}: resize applies only to image groups")
            if not (0 < g.resize.width <= _MAX_SIDE and 0 < g.resize.height <= _MAX_SIDE):
                raise SettingsError(f"{where}: resize width and height must be between 1 and {_MAX_SIDE}")
        if not g.placeholder_path().is_file():
            raise SettingsError(f"{where}: placeholder {str(g.placeholder_path())!r} is not a readable file")


class _GroupsFile(msgspec.Struct, forbid_unknown_fields=True):
    groups: list[GroupConfig]


def load_groups(path: str | Path) -> list[GroupConfig]:
    """Groups from a ``.json`` or ``.toml`` file holding ``groups = [{name, mime_types, placeholder?, resize?}]``.

    A relative placeholder path is taken relative to the file's directory.
    """
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"media config {str(path)!r}: {exc.strerror}") from None
    raw: Any
    try:
        if path.suffix.lower() == ".toml":
            raw = tomllib.loads(text.decode())
        elif path.suffix.lower() == ".json":
            raw = json.loads(text)
        else:
            raise SettingsError(f"media config {str(path)!r}: use a .json or .toml file")
        groups = msgspec.convert(raw, _GroupsFile).groups
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError, msgspec.ValidationError) as exc:
        raise SettingsError(f"media config {str(path)!r}: {str(exc).splitlines()[0]}") from None
    for g in groups:
        if g.placeholder and not Path(g.placeholder).is_absolute():
            g.placeholder = str(path.parent / g.placeholder)
    _check_groups(groups)
    return groups


def media_config(
    data_dir: str | Path,
    *,
    upload_user: str | None,
    upload_password: str | None,
    groups: list[GroupConfig] | str | Path | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    storage_dir: str | Path | None = None,
) -> MediaConfig:
    """The configuration ``workup up`` and ``workup media`` use: storage in ``<data_dir>/media`` unless
    ``storage_dir`` is given, the default groups unless ``groups`` (a list or a config file path)."""
    if isinstance(groups, (str, Path)):
        groups = load_groups(groups)
    if not max_upload_mb > 0:
        raise SettingsError(f"max upload size must be positive, got {max_upload_mb} MB")
    return MediaConfig(
        storage_dir=str(storage_dir if storage_dir is not None else Path(data_dir) / "media"),
        upload_user=upload_user or "",
        upload_password=upload_password or "",
        groups=groups if groups is not None else default_groups(),
        max_upload_bytes=int(max_upload_mb * 1024 * 1024),
    )
