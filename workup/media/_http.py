"""Validators, conditional requests and byte ranges (RFC 9110 §8.8, §13, §14) as pure decisions.

Header syntax is werkzeug's (``werkzeug.http``, installed with Quart): entity-tag lists and Range;
the decisions (which range is satisfiable, weak or strong comparison) are ours, where RFC 9110
and werkzeug differ (a suffix longer than the file is the whole file, ``bytes=-0`` is
unsatisfiable). Dates stay with ``email.utils``, which, unlike werkzeug, refuses a date without a
zone. Measured (timeit, 200k calls, on a shared and loaded 2-core machine): werkzeug takes 1 to 5 µs
more per parsed header than the hand-written parser it replaced (3 to 12 µs against 1 to 11 µs),
nothing beside the cost of serving a request; one well-tested parser of header syntax is worth it.
"""

from __future__ import annotations

import email.utils
import re
from typing import Final

from werkzeug.http import parse_etags, parse_range_header, unquote_etag

__all__ = [
    "UNSATISFIABLE", "make_etag", "http_date", "parse_http_date",
    "is_not_modified", "if_range_holds", "byte_range",
]


class _Unsatisfiable:
    def __repr__(self) -> str:
        return "UNSATISFIABLE"


UNSATISFIABLE: Final = _Unsatisfiable()
# a zero-length suffix: werkzeug calls it a syntax error, RFC 9110 §14.1.1 unsatisfiable
_ZERO_SUFFIX = re.compile(r"\s*bytes\s*=\s*-0+\s*", re.IGNORECASE)


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


def _opaque(etag: str) -> str:
    return unquote_etag(etag)[0] or ""


def is_not_modified(etag: str, mtime: float, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Whether a GET may be answered 304. If-None-Match (weak comparison) wins over If-Modified-Since."""
    if if_none_match is not None:
        tags = parse_etags(if_none_match)
        return tags.star_tag or tags.contains_weak(_opaque(etag))
    since = parse_http_date(if_modified_since)
    return since is not None and int(mtime) <= since


def if_range_holds(etag: str, mtime: float, if_range: str | None) -> bool:
    """Whether a Range may be honoured: no If-Range, a strongly equal tag, or the exact Last-Modified date."""
    if if_range is None:
        return True
    if_range = if_range.strip()
    if if_range.startswith(('"', "W/")):   # an entity tag, else a date
        tag, weak = unquote_etag(if_range)
        return not weak and tag == _opaque(etag)
    since = parse_http_date(if_range)
    return since is not None and int(mtime) == since


def byte_range(header: str | None, size: int) -> tuple[int, int] | _Unsatisfiable | None:
    """The ``[start, end)`` slice a ``Range`` header asks for, :data:`UNSATISFIABLE`, or ``None`` for
    the whole representation (no header, a syntax error, another unit, or several ranges, which this
    server answers in full rather than as multipart/byteranges)."""
    if header is None:
        return None
    parsed = parse_range_header(header)
    if parsed is None:
        return UNSATISFIABLE if _ZERO_SUFFIX.fullmatch(header) else None
    if parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None
    start, stop = parsed.ranges[0]   # stop exclusive, None: to the end; start < 0: a suffix
    if start < 0:   # werkzeug's range_for_length refuses a suffix longer than the file: it is all of it
        return UNSATISFIABLE if size == 0 else (max(0, size + start), size)
    if start >= size:
        return UNSATISFIABLE
    return (start, size if stop is None else min(stop, size))
