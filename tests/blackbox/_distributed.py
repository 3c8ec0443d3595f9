"""The distributed `workup up` (RabbitMQ, Redis, PostgreSQL, MongoDB wire, Cassandra), started in a
background thread as soon as the first test of this package starts, so its slow start (Cassandra
schema) overlaps the embedded suite. Each store gets a name of its own, dropped by `close()`."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import uuid
from concurrent.futures import Future
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..conftest import service_url
from ._harness import Running, start_workup

SERVICES = ("users", "jobs", "contracts", "payments")


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def _postgres(admin_url: str, statement: str) -> None:
    import psycopg
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(statement)


def _drop_mongo(url: str, name: str) -> None:
    import pymongo
    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(name)
    finally:
        client.close()


def drop_keyspaces(hosts: str, pattern: str) -> list[str]:
    """Drop the keyspaces whose whole name matches `pattern`; their names."""
    from cassandra.cluster import Cluster
    host, _, port = hosts.split(",")[0].strip().rpartition(":")
    cluster = Cluster([host or "127.0.0.1"], port=int(port or 9042))
    try:
        session = cluster.connect()
        names = [row.keyspace_name for row in session.execute("SELECT keyspace_name FROM system_schema.keyspaces")
                 if re.fullmatch(pattern, row.keyspace_name)]
        for name in names:
            session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=60)
        return names
    finally:
        cluster.shutdown()


def drop_amqp_names(url: str, prefix: str) -> None:
    """Delete the durable queues and exchanges `workup up` declared under `prefix`."""
    import trio

    from workup.amqp import connect

    async def drop() -> None:
        with trio.fail_after(30):
            async with connect(url, reconnect=False) as conn:
                channel = await conn.channel()
                for service in SERVICES:
                    for queue in (f"{prefix}.{service}", f"{prefix}.{service}.dead"):
                        await channel.delete_queue(queue)
                    await channel.delete_exchange(f"{prefix}.control.{service}")
                for exchange in (f"{prefix}.events", f"{prefix}.dlx"):
                    await channel.delete_exchange(exchange)
    trio.run(drop)


class Distributed:
    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:10]
        self.name = f"workup_contract_{self.tag}"      # PostgreSQL and MongoDB database
        self.prefix = f"contract{self.tag}"            # AMQP names and Cassandra keyspaces
        self.urls: dict[str, str] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="workup-contract-dist-"))
        self.future: Future[Running] = Future()
        self.exit_code: int | None = None
        self._lock = threading.Lock()
        self._closed = False

    def begin(self) -> None:
        threading.Thread(target=self._start, name="contract-distributed", daemon=True).start()

    def _start(self) -> None:
        try:
            for name in ("rabbitmq", "redis", "postgres", "ferretdb", "cassandra"):
                self.urls[name] = service_url(name)          # pytest.fail with a clear message
            _postgres(self.urls["postgres"], f'CREATE DATABASE "{self.name}"')
            self.urls["created"] = "yes"
            self.future.set_result(start_workup(self.tmp, {
                "WORKUP_AMQP_URL": self.urls["rabbitmq"],
                "WORKUP_AMQP_PREFIX": self.prefix,
                "WORKUP_REDIS_URL": self.urls["redis"],
                "WORKUP_PAYMENTS_POSTGRES_URL": _with_database(self.urls["postgres"], self.name),
                "WORKUP_USERS_MONGO_URL": _with_database(self.urls["ferretdb"], self.name),
                "WORKUP_CASSANDRA_HOSTS": self.urls["cassandra"],
                "WORKUP_CASSANDRA_KEYSPACE_PREFIX": self.prefix,
            }, startup_timeout=150))
        except BaseException as exc:                      # handed to the fixture that waits
            self.future.set_exception(exc)

    def running(self) -> Running:
        return self.future.result(timeout=240)

    def close(self) -> int | None:
        """Stop the system (SIGTERM) and drop its stores, once; the exit code (None if never up)."""
        with self._lock:
            if self._closed:
                return self.exit_code
            self._closed = True
        try:
            if self.future.exception(timeout=240) is None:
                self.exit_code = self.future.result().stop()
        finally:
            self._drop_stores()
        return self.exit_code

    def _drop_stores(self) -> None:
        """Every drop is tried; the first failure is raised after the others ran."""
        urls, errors = self.urls, []
        drops = [lambda: shutil.rmtree(self.tmp, ignore_errors=True)]
        if urls.get("created"):
            drops += [lambda: _postgres(urls["postgres"], f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'),
                      lambda: _drop_mongo(urls["ferretdb"], self.name),
                      lambda: drop_keyspaces(urls["cassandra"], rf"{self.prefix}_\w+"),
                      lambda: drop_amqp_names(urls["rabbitmq"], self.prefix)]
        for drop in drops:
            try:
                drop()
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
