"""Test wiring for the users service: real store servers from WORKUP_TEST_* (loopback defaults),
each test on a database of its own."""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit, urlunsplit

__all__ = ["mongo_url", "require_mongo"]


def mongo_url() -> str:
    """The test MongoDB URL with a fresh database name, so parallel runs never meet."""
    base = os.environ.get("WORKUP_TEST_MONGO_URL") or "mongodb://127.0.0.1:27017/"
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/workup_users_test_{uuid.uuid4().hex[:12]}"))


def require_mongo(url: str) -> None:
    """Fail (never skip) with a clear message when the server is not reachable."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 27017
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        raise AssertionError(f"MongoDB-wire server not reachable at {host}:{port} ({exc}); "
                             f"start it with `bash ops/dev/services up` or set WORKUP_TEST_MONGO_URL") from None
