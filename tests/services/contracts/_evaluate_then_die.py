"""Run as a child process by ``tests/services/contracts/test_once.py``: a contracts instance on
RabbitMQ and Cassandra whose process is SIGKILLed right after an ``EvaluateMilestone`` moved its
milestone and recorded its answer, before the payment request, the reply and the ack. Arguments:
Cassandra hosts, keyspace prefix, AMQP URL, queue prefix, data dir. It prints ``ready``, then
``committed``."""

from __future__ import annotations

import os
import signal
import sys

import trio

from workup.services.contracts import service
from workup.settings import Settings
from workup.storage import CassandraDb, Row, Table
from tests.services._dying import serve_alone

_update_if = CassandraDb.update_if


async def _then_die(self: CassandraDb, table: Table, key: Row, changes: Row, expect: Row) -> bool:
    applied = await _update_if(self, table, key, changes, expect)
    # the evaluation's move, which writes its answer into the milestone row (contracts/store.py)
    if applied and '"contracts.EvaluateMilestone:' in str(changes.get("inbox", "")):
        print("committed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)     # after the move and its answer, before anything else
    return applied


async def serve_contracts(hosts: str, keyspaces: str, amqp_url: str, prefix: str, data_dir: str) -> None:
    """The contracts instance of the children that die (this one and ``_create_then_die.py``)."""
    await serve_alone(service, Settings(data_dir=data_dir, cassandra_hosts=hosts, cassandra_keyspace_prefix=keyspaces,
                                        amqp_url=amqp_url), prefix)


async def main(*args: str) -> None:
    CassandraDb.update_if = _then_die    # type: ignore[method-assign]
    await serve_contracts(*args)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:6])
