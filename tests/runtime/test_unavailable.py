"""Which failures are "a server is away" (503 with Retry-After) and which stay internal errors
(500): ``workup/runtime/unavailable.py`` and its use in ``workup/runtime/dispatch.py``. The
drivers' errors are the real ones, got from a port nothing listens on or a real locked SQLite
file; the dispatch test runs the echo service's table with a handler swapped in."""

from __future__ import annotations

import socket
import sqlite3
import time
from pathlib import Path

import msgspec
import pytest
import psycopg
import pymongo
import pymongo.errors
from cassandra import OperationTimedOut, Unavailable
from cassandra.cluster import NoHostAvailable
from psycopg_pool import PoolTimeout

from workup.problems import ProblemError
from workup.runtime import load_service
from workup.runtime.dispatch import dispatch
from workup.runtime.context import ProcessRuntime
from workup.runtime.registry import CommandTable
from workup.runtime.unavailable import unavailable
from workup.services.echo import Echo
from workup.services.payments.postgres import StoreUnavailable
from workup.settings import Settings
from workup.transport import LocalTransport
from workup.transport.envelope import Caller


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _raised(fn) -> BaseException:  # type: ignore[no-untyped-def]
    try:
        fn()
    except Exception as exc:
        return exc
    raise AssertionError("it did not fail")


def test_a_refused_postgres_connection_is_unavailable() -> None:
    exc = _raised(lambda: psycopg.connect(f"postgresql://x@127.0.0.1:{_closed_port()}/x", connect_timeout=2))
    assert isinstance(exc, psycopg.OperationalError) and unavailable(exc)
    assert unavailable(PoolTimeout("couldn't get a connection after 30.00 sec"))


def test_mongo_server_selection_and_dropped_connections_are_unavailable() -> None:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{_closed_port()}/", serverSelectionTimeoutMS=200)
    try:
        exc = _raised(lambda: client.db.c.find_one({}))
    finally:
        client.close()
    assert isinstance(exc, pymongo.errors.ServerSelectionTimeoutError) and unavailable(exc)
    assert unavailable(pymongo.errors.AutoReconnect("connection reset"))
    assert unavailable(pymongo.errors.NetworkTimeout("timed out"))


def test_cassandra_without_hosts_or_in_time_is_unavailable() -> None:
    assert unavailable(NoHostAvailable("Unable to connect to any servers", {"127.0.0.1:9042": OSError()}))
    assert unavailable(OperationTimedOut())
    assert unavailable(Unavailable("not enough replicas"))


def test_a_locked_sqlite_database_is_unavailable_other_sqlite_errors_are_not(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        locked = _raised(lambda: other.execute("BEGIN IMMEDIATE"))
        missing = _raised(lambda: other.execute("SELECT * FROM nope"))
    finally:
        other.close()
        holder.close()
    assert isinstance(locked, sqlite3.OperationalError) and unavailable(locked)
    assert isinstance(missing, sqlite3.OperationalError) and unavailable(missing) is None


def test_the_projects_own_and_wrapped_errors() -> None:
    assert unavailable(StoreUnavailable("payments: cannot reach PostgreSQL"))
    assert unavailable(ConnectionRefusedError())
    try:
        try:
            raise pymongo.errors.AutoReconnect("gone")
        except pymongo.errors.AutoReconnect as inner:
            raise RuntimeError("users store failed") from inner
    except RuntimeError as wrapped:
        assert unavailable(wrapped)                 # raise ... from: its cause counts
    assert unavailable(ExceptionGroup("both", [OperationTimedOut(), ConnectionResetError()]))


@pytest.mark.parametrize("bug", [
    KeyError("x"), RuntimeError("secret internal detail"), TypeError("bad"), TimeoutError(),
    psycopg.errors.UndefinedTable("relation does not exist"), psycopg.errors.UniqueViolation("dup"),
    psycopg.ProgrammingError("syntax"), pymongo.errors.DuplicateKeyError("dup"),
    pymongo.errors.OperationFailure("bad query"),
    ExceptionGroup("one bug among", [OperationTimedOut(), KeyError("x")]),
])
def test_real_bugs_stay_internal_errors(bug: Exception) -> None:
    assert unavailable(bug) is None


def test_a_bug_while_handling_a_connection_error_stays_a_bug() -> None:
    try:
        try:
            raise pymongo.errors.AutoReconnect("gone")
        except pymongo.errors.AutoReconnect:
            raise KeyError("typo in the fallback")      # implicit __context__, not a cause
    except KeyError as bug:
        assert unavailable(bug) is None


@pytest.mark.parametrize(("raised", "status"), [
    (pymongo.errors.ServerSelectionTimeoutError("127.0.0.1:27017: connection refused"), 503),
    (PoolTimeout("couldn't get a connection after 30.00 sec"), 503),
    (RuntimeError("secret internal detail"), 500),
    (ProblemError(409, "asked to fail"), 409),
])
async def test_dispatch_answers_a_store_away_503_and_a_bug_500(raised: Exception, status: int) -> None:
    table = CommandTable(load_service("echo"))

    async def handler(ctx: object, req: Echo) -> None:
        raise raised
    table.replace("Echo", handler, b"raises")
    rt = ProcessRuntime("echo", Settings(), LocalTransport())
    reply = await dispatch(table, rt, "echo.Echo", msgspec.msgpack.encode(Echo("x")),
                           Caller("u1", "CLIENT"), time.time() + 5, "r-unavail")
    assert reply.status == status
    problem = msgspec.json.decode(reply.body)
    if status == 503:
        assert problem["title"] == "Service Unavailable" and "retry later" in problem["detail"]
    if status == 500:
        assert "r-unavail" in problem["detail"] and "secret" not in problem["detail"]
