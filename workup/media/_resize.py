"""Optional downscaling of uploaded images with Pillow (run in a worker thread)."""

from __future__ import annotations

import os
from pathlib import Path

from typing import TYPE_CHECKING

from ._config import Resize

if TYPE_CHECKING:
    from PIL import Image as _Image

__all__ = ["BadImage", "MAX_PIXELS", "resize_file"]

MAX_PIXELS = 40_000_000  # refuse to decode more than this (about 160 MB as RGBA)
_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP",
            "image/bmp": "BMP", "image/tiff": "TIFF"}


class BadImage(ValueError):
    """The bytes are not a decodable image of a size this server will process."""


def resize_file(path: Path, mime_type: str, resize: Resize) -> bool:
    """Downscale the image at ``path`` in place when it exceeds the box; returns whether it changed.

    Smaller images and animations are left byte for byte as uploaded.
    """
    from PIL import Image, ImageOps  # imported on first use: most processes never resize

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise BadImage(f"image of {im.width}x{im.height} pixels is too large to process")
            if getattr(im, "n_frames", 1) > 1 or (im.width <= resize.width and im.height <= resize.height):
                im.verify()
                return False
            im.load()
            box = (resize.width, resize.height)
            out = ImageOps.fit(im, box) if resize.mode == "cover" else _fit(im, box)
            if mime_type == "image/jpeg" and out.mode not in ("RGB", "L"):
                out = out.convert("RGB")
            tmp = path.with_name(f"{path.stem}-resized{path.suffix}")  # still a swept temp name
            try:
                out.save(tmp, format=_FORMATS[mime_type], **({"quality": 90} if mime_type == "image/jpeg" else {}))
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            return True
    except BadImage:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadImage("the resource is not a decodable image") from None


def _fit(im: "_Image.Image", box: tuple[int, int]) -> "_Image.Image":
    im = im.copy()
    im.thumbnail(box)
    return im
