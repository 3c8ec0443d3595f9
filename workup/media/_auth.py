"""HTTP Basic credentials for uploads, compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

__all__ = ["basic_credentials", "credentials_match"]


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic ...`` header, or ``None`` if absent/malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _digest(text: str) -> bytes:
    # equal-length digests: the comparison's time reveals neither content nor length
    return hashlib.sha256(text.encode("utf-8")).digest()


def credentials_match(given: tuple[str, str] | None, user: str, password: str) -> bool:
    """True when ``given`` equals the configured pair; both halves are always compared."""
    if given is None:
        given = ("", "")
    user_ok = hmac.compare_digest(_digest(given[0]), _digest(user))
    password_ok = hmac.compare_digest(_digest(given[1]), _digest(password))
    return user_ok & password_ok
