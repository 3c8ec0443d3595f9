"""Validators, conditional requests and byte ranges (RFC 9110 §8.8, §13, §14) as pure decisions."""

from __future__ import annotations

import email.utils
import re
from typing import Final

__all__ = [
    "UNSATISFIABLE", "make_etag", "http_date", "parse_http_date",
    "is_not_modified", "if_range_holds", "byte_range",
]


class _Unsatisfiable:
    def __repr__(self) -> str:
        return "UNSATISFIABLE"


UNSATISFIABLE: Final = _Unsatisfiable()
_DIGITS = re.compile(r"[0-9]*")  # str.isdigit() would take "²"


def make_etag(size: int, mtime_ns: int, inode: int) -> str:
    """A strong validator; an upload renames a new inode into place, so it changes with every upload."""
    return f'"{inode:x}-{size:x}-{mtime_ns:x}"'


def http_date(timestamp: float) -> str:
    return email.utils.formatdate(timestamp, usegmt=True)


def parse_http_date(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # asctime form carries no zone; HTTP dates are GMT
        return None
    return parsed.timestamp()


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def is_not_modified(etag: str, mtime: float, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Whether a GET may be answered 304. If-None-Match (weak comparison) wins over If-Modified-Since."""
    if if_none_match is not None:
        tags = _tags(if_none_match)
        return "*" in tags or any(_opaque(tag) == _opaque(etag) for tag in tags)
    since = parse_http_date(if_modified_since)
    return since is not None and int(mtime) <= since


def if_range_holds(etag: str, mtime: float, if_range: str | None) -> bool:
    """Whether a Range may be honoured: no If-Range, a strongly equal tag, or the exact Last-Modified date."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):
        return not if_range.startswith("W/") and if_range == etag
    since = parse_http_date(if_range)
    return since is not None and int(mtime) == since


def byte_range(header: str | None, size: int) -> tuple[int, int] | _Unsatisfiable | None:
    """The ``[start, end)`` slice a ``Range`` header asks for, :data:`UNSATISFIABLE`, or ``None`` for
    the whole representation (no header, a syntax error, another unit, or several ranges, which this
    server answers in full rather than as multipart/byteranges)."""
    if header is None:
        return None
    unit, eq, spec = header.partition("=")
    if not eq or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or not _DIGITS.fullmatch(first) or not _DIGITS.fullmatch(last):
        return None
    if first == "":
        if last == "":
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return UNSATISFIABLE
        return (max(0, size - suffix), size)
    start = int(first)
    if last != "" and int(last) < start:
        return None
    if start >= size:
        return UNSATISFIABLE
    end = size if last == "" else min(int(last) + 1, size)
    return (start, end)
