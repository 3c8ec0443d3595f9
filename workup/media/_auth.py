"""HTTP Basic credentials for uploads, compared in constant time."""

from __future__ import annotations

import base64
import binascii
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


def credentials_match(given: tuple[str, str] | None, user: str, password: str) -> bool:
    """True when ``given`` equals the configured pair; both halves are always compared."""
    if given is None:
        given = ("", "")
    user_ok = hmac.compare_digest(given[0].encode(), user.encode())
    password_ok = hmac.compare_digest(given[1].encode(), password.encode())
    return user_ok & password_ok
