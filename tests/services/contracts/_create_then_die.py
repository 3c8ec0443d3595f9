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

_create = CassandraDb.create


async def _then_die(self: CassandraDb, writes: Sequence[tuple[Table, Row]], made_ms: int) -> None:
    # as when the rows need more than one batch: the contract row (which means "complete") goes
    # last, so a kill can fall after the index rows and before it
    cut = next((i for i, (table, _) in enumerate(writes) if table.name == "contracts"), None)
    if cut is None or not any(table.name == "contracts_by_party" for table, _ in writes[:cut]):
        return await _create(self, writes, made_ms)
    await _create(self, writes[:cut], made_ms)
    print("indexed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)     # after the index rows, before the contract row


async def main(*args: str) -> None:
    CassandraDb.create = _then_die    # type: ignore[method-assign]
    await serve_contracts(*args)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:6])
