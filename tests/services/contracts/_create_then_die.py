"""Run as a child process by ``tests/services/contracts/test_once.py``: a contracts instance on
RabbitMQ and Cassandra whose process is SIGKILLed right after a ``CreateContract`` wrote its
``contracts_by_party`` rows, before the contract row, the reply and the ack. Arguments:
Cassandra hosts, keyspace prefix, AMQP URL, queue prefix, data dir. It prints ``ready``, then
``indexed``."""

from __future__ import annotations

import os
import signal
import sys
from typing import Sequence

import trio

from workup.storage import CassandraDb, Row, Table
from tests.services.contracts._evaluate_then_die import serve_contracts

_upsert_together = CassandraDb.upsert_together


async def _then_die(self: CassandraDb, writes: Sequence[tuple[Table, Row]]) -> None:
    await _upsert_together(self, writes)
    if any(table.name == "contracts_by_party" for table, _ in writes):
        print("indexed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)     # after the index rows, before the contract row


async def main(*args: str) -> None:
    CassandraDb.upsert_together = _then_die    # type: ignore[method-assign]
    await serve_contracts(*args)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:6])
