"""File names: what a client may ask for, and how an uploaded name is made safe to store.

A *requested* name (``GET /static/<group>/<name>``) that contains a path separator, a ``..``, NUL or
another control character, in its raw form or after up to three rounds of percent-decoding (so
``%2e%2e%2f`` and ``%252e%252e%252f`` count) or of Unicode compatibility folding (fullwidth ``／``),
is refused outright. An *uploaded* ``filename`` is sanitised instead, as docs/api.md says: every
character outside ``a-z 0-9 _ - .`` (separators, ``%``, NUL, control characters) becomes ``_`` and
every run of dots ``..`` does too, so whatever a client sends, the stored name is one plain file in
the group directory.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

__all__ = ["BadName", "MAX_STEM", "check_name", "requested_name", "stored_stem"]

MAX_STEM = 100  # characters of an uploaded name kept before the extension
_MAX_REQUEST = 255
_DECODE_ROUNDS = 3
_SEPARATORS = ("/", "\\")
# extensions dropped from an uploaded name, since the stored one comes from the bytes
_MEDIA_EXTENSIONS = {"png", "jpg", "jpeg", "jpe", "gif", "webp", "bmp", "tif", "tiff", "pdf"}
_UNSAFE = re.compile(r"[^a-z0-9._-]+")
_REQUEST_RE = re.compile(r"[a-z0-9_-][a-z0-9._-]*")
_DOTS = re.compile(r"\.{2,}")
_UNDERSCORES = re.compile(r"_{2,}")


class BadName(ValueError):
    """A name that is a traversal attempt or otherwise unusable; ``str()`` says why."""


def _forms(name: str) -> list[str]:
    forms = [name]
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote(forms[-1])
        if decoded == forms[-1]:
            break
        forms.append(decoded)
    # compatibility folding turns look-alikes (fullwidth '／', one-dot leader '․') into the real thing
    return forms + [unicodedata.normalize("NFKC", form) for form in forms]


def check_name(name: str) -> None:
    """Raise :class:`BadName` when ``name`` (or a percent-decoded form of it) could leave its directory."""
    for form in _forms(name):
        if any(sep in form for sep in _SEPARATORS):
            raise BadName("file name must not contain path separators")
        if ".." in form:
            raise BadName("file name must not contain '..'")
        if any(unicodedata.category(ch) == "Cc" for ch in form):
            raise BadName("file name must not contain NUL or control characters")


def requested_name(name: str) -> str:
    """The stored name a ``GET /static/<group>/<name>`` refers to (lower case), or :class:`BadName`.

    Stored names never start with a dot, so the server's own temporary files are unreachable.
    """
    check_name(name)
    name = name.lower()
    if len(name) > _MAX_REQUEST or not _REQUEST_RE.fullmatch(name):
        raise BadName("not a valid file name")
    return name


def stored_stem(filename: str) -> str:
    """The stem an uploaded ``filename`` is stored under (the extension is added from the bytes).

    ASCII lower case (look-alikes folded, accents dropped: "Résumé" → "resume"), any character
    other than ``a-z 0-9 _ - .`` and any ``..`` to ``_`` (runs of ``_`` collapsed), a media
    extension dropped, leading/trailing dots, dashes and underscores dropped, at most
    :data:`MAX_STEM` characters; so a stored name needs no escaping in a URL and never leaves its
    directory. :class:`BadName` when nothing usable is left.
    """
    name = _ascii(unicodedata.normalize("NFKC", filename)).strip().lower()
    stem, dot, ext = name.rpartition(".")
    if dot and ext in _MEDIA_EXTENSIONS:
        name = stem
    name = _UNSAFE.sub("_", name)
    name = _DOTS.sub("_", name)
    name = _UNDERSCORES.sub("_", name).strip("._-")[:MAX_STEM].rstrip("._-")
    if not name:
        raise BadName("file name has no usable characters")
    check_name(name)  # cannot fail after the above; kept as the last line of defence
    return name


def _ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
