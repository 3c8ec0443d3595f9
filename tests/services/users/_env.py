"""Test wiring for the users service: real store servers from WORKUP_TEST_* (loopback defaults),
each test on a database of its own."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

from workup.testing import env_value, require_server

__all__ = ["mongo_url", "require_mongo"]


def mongo_url() -> str:
    """The test MongoDB URL with a fresh database name, so parallel runs never meet."""
    base = env_value("WORKUP_TEST_MONGO_URL")
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/workup_users_test_{uuid.uuid4().hex[:12]}"))


def require_mongo(url: str) -> None:
    """Fail (never skip) with a clear message when the server is not reachable."""
    require_server(url, 27017, "MongoDB-wire server", "WORKUP_TEST_MONGO_URL")
