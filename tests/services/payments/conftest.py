"""Fixtures for the payments tests: a unique PostgreSQL database per run (dropped at the end) and
the two store adapters behind one ``store`` fixture, so that one contract suite runs on both."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from workup.services.payments.postgres import PostgresStore
from workup.services.payments.sqlite import SqliteStore

PG_URL = os.environ.get("WORKUP_TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def db_url(name: str, **query: str) -> str:
    """PG_URL pointing at database ``name`` (a URL: Settings wants ``postgresql://``)."""
    parts = urlsplit(PG_URL)
    q = dict(parse_qsl(parts.query))
    q.update(query)
    return urlunsplit(parts._replace(path="/" + name, query=urlencode(q)))


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(make_conninfo(PG_URL, connect_timeout=5), autocommit=True)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (set WORKUP_TEST_POSTGRES_URL): {exc}")


@contextlib.contextmanager
def fresh_database(tag: str = "t") -> Iterator[str]:
    """A new, empty database; yields its URL; dropped (with its connections) afterwards."""
    name = f"workup_pay_{tag}_{uuid.uuid4().hex[:12]}"
    with _admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield db_url(name)
    finally:
        with _admin() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def pg_url(postgres_url: str) -> Iterator[str]:
    """One database for the session (tests use unique user ids, so they never meet)."""
    with fresh_database("s") as url:
        yield url


@pytest.fixture(scope="module")
def store_pg_url(postgres_url: str) -> Iterator[str]:
    """The store contract suite's own database (its outbox rows are never delivered: no relay
    of another test may pick them up)."""
    with fresh_database("c") as url:
        yield url


@pytest.fixture(params=["postgres", "postgres-serializable", "sqlite"])
async def store(request: pytest.FixtureRequest, store_pg_url: str, tmp_path: Path):
    pg_url = store_pg_url
    if request.param.startswith("postgres"):
        isolation = "serializable" if request.param.endswith("serializable") else "read committed"
        s = PostgresStore.open(pg_url, size=4, application_name=f"workup-test-{uuid.uuid4().hex[:8]}",
                               isolation=isolation)
    else:
        s = SqliteStore.open(tmp_path / "payments.sqlite3", size=4)
    try:
        yield s
    finally:
        await s.close()


def uid() -> str:
    return uuid.uuid4().hex
