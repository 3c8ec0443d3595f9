"""What a file is, judged from its first bytes (never from its name or the client's header)."""

from __future__ import annotations

__all__ = ["SNIFF_BYTES", "SUPPORTED_TYPES", "EXTENSIONS", "sniff", "extension_for", "type_for_name"]

# enough leading bytes to tell every supported type apart
SNIFF_BYTES = 16

# MIME type -> the extension a stored file of that type gets
EXTENSIONS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "image/bmp": "bmp",
    "image/tiff": "tif",
    "application/pdf": "pdf",
}
SUPPORTED_TYPES = frozenset(EXTENSIONS)

# extensions recognised when serving a file, including the usual aliases
_BY_EXTENSION: dict[str, str] = {ext: mime for mime, ext in EXTENSIONS.items()} | {
    "jpeg": "image/jpeg", "jpe": "image/jpeg", "tiff": "image/tiff",
}


def sniff(head: bytes) -> str | None:
    """The MIME type announced by the magic bytes at the start of a file, or ``None``."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"BM") and len(head) >= 14:
        return "image/bmp"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "image/tiff"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def extension_for(mime_type: str) -> str:
    return EXTENSIONS[mime_type]


def type_for_name(name: str) -> str | None:
    """The MIME type implied by a stored file's extension (stored names carry a sniffed one)."""
    _, dot, ext = name.rpartition(".")
    return _BY_EXTENSION.get(ext.lower()) if dot else None
