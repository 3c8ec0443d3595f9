"""The distributed system the reliability runs break: ``workup gateway`` and ``workup worker
<service> --processes W`` for each service (``workup/bench/system.py``'s split topology), on the
given servers, each store under a name of this run's own that :meth:`Stores.drop` removes.

Servers default to the shared dev services (``tests/conftest.py``); a run that stops one passes
its private instance instead (``tests/amqp/_private_broker.py``, ``tests/cache/_private_redis.py``,
``_private_stores.py``), so the shared ones are never stopped.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import msgspec

from tests.blackbox._distributed import _drop_mongo, _postgres, _with_database, drop_amqp_names, drop_keyspaces
from tests.conftest import service_url
from workup.bench.system import System, start_split


class Servers(msgspec.Struct, kw_only=True):
    """Where each server is; ``shared()`` fills every one not given from the dev services."""
    rabbitmq: str
    redis: str
    postgres: str          # an admin URL: the run creates its own database there
    ferretdb: str
    cassandra: str

    @classmethod
    def shared(cls, **given: str) -> "Servers":
        names = ("rabbitmq", "redis", "postgres", "ferretdb", "cassandra")
        return cls(**{n: given.get(n) or service_url(n) for n in names})


class Stores:
    """This run's names on ``servers``: a PostgreSQL and a MongoDB database, an AMQP prefix and
    Cassandra keyspace prefix; :meth:`env` gives the settings, :meth:`drop` removes them all."""

    def __init__(self, servers: Servers, tag: str) -> None:
        self.servers = servers
        self.id = f"{tag}{uuid.uuid4().hex[:8]}"
        self.database = f"workup_{self.id}"
        self._created = False

    def env(self) -> dict[str, str]:
        if not self._created:
            _postgres(self.servers.postgres, f'CREATE DATABASE "{self.database}"')
            self._created = True
        s = self.servers
        return {"WORKUP_AMQP_URL": s.rabbitmq, "WORKUP_AMQP_PREFIX": self.id, "WORKUP_REDIS_URL": s.redis,
                "WORKUP_PAYMENTS_POSTGRES_URL": _with_database(s.postgres, self.database),
                "WORKUP_USERS_MONGO_URL": _with_database(s.ferretdb, self.database),
                "WORKUP_CASSANDRA_HOSTS": s.cassandra, "WORKUP_CASSANDRA_KEYSPACE_PREFIX": self.id}

    def drop(self) -> None:
        """Every drop is tried (a private server may be gone already); errors are not raised."""
        s = self.servers
        drops = [lambda: drop_keyspaces(s.cassandra, rf"{self.id}_\w+"), lambda: _drop_mongo(s.ferretdb, self.database),
                 lambda: drop_amqp_names(s.rabbitmq, self.id)]
        if self._created:
            drops.append(lambda: _postgres(s.postgres, f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        for drop in drops:
            with contextlib.suppress(Exception):
                drop()


@contextlib.contextmanager
def distributed(servers: Servers, tag: str, *, workers: int = 2, env: dict[str, str] | None = None,
                startup_timeout: float = 240.0) -> Iterator[System]:
    """The split topology on ``servers`` for the block (one gateway process, ``workers`` worker
    processes per service), then stopped and its stores dropped."""
    stores = Stores(servers, tag)
    try:
        with start_split(gateways=1, workers=workers, startup_timeout=startup_timeout,
                         extra_env={**stores.env(), **(env or {})}) as system:
            yield system
    finally:
        stores.drop()


def worker_children(system: System) -> dict[str, list[int]]:
    """The live worker processes (``workup.runtime.child``) of each service, by service name."""
    import psutil
    out: dict[str, list[int]] = {}
    for pid, role in zip(system.pids, system.roles):
        if not role.startswith("worker "):
            continue
        try:
            children = psutil.Process(pid).children()
        except psutil.Error:
            continue
        out[role.split()[1]] = [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    return out
