"""Keyword search decisions: which words a job is indexed under, which words a query asks for,
and the opaque paging state. Pure functions.

A word is a maximal run of letters and digits, compared case-insensitively (``casefold``): "C++"
is the word "c", "node.js" the words "node" and "js", the same way for jobs and queries, so a
query word matches whole words only. Browsing uses the reserved term ``*`` (never a word).
"""

from __future__ import annotations

import base64
import re

__all__ = ["ALL", "words", "job_terms", "query_terms", "encode_state", "decode_state", "BadPagingState"]

ALL = "*"
_WORD = re.compile(r"[^\W_]+")
_STATE = re.compile(r"v1:(\d{1,15}):([0-9a-f]{32})")


class BadPagingState(ValueError):
    pass


def words(text: str) -> list[str]:
    return [w.casefold() for w in _WORD.findall(text)]


def job_terms(title: str, description: str, skills: list[str]) -> set[str]:
    """Every distinct word of the title, description and skills, plus :data:`ALL`."""
    terms = {ALL}
    for text in (title, description, *skills):
        terms.update(words(text))
    return terms


def query_terms(query: str) -> list[str]:
    """Distinct words of the query, longest first (a long word is usually rarer: it drives the
    scan when the index cannot tell the terms apart, see ``jobs.search_page``). Empty when the query has no word at all (e.g. "!!")."""
    return sorted(set(words(query)), key=lambda w: (-len(w), w))


def encode_state(created_ms: int, job_id: str) -> str:
    """The position after which the next page starts (newest-first order: ``created_ms`` then id)."""
    return base64.urlsafe_b64encode(f"v1:{created_ms}:{job_id}".encode()).decode().rstrip("=")


def decode_state(state: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4)).decode("ascii")
    except (ValueError, UnicodeDecodeError):
        raise BadPagingState("pagingState is not valid") from None
    m = _STATE.fullmatch(raw)
    if m is None:
        raise BadPagingState("pagingState is not valid")
    return int(m.group(1)), m.group(2)
