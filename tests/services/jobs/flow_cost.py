"""Per-step cost of one hire-to-payout flow (issue 15): broker round trips, Cassandra statements
and cache calls, counted in-process on a distributed system (real RabbitMQ, Cassandra, Redis,
FerretDB, PostgreSQL)::

    ./scripts/test tests/services/jobs/test_flow_cost.py -q   # makes .venv, starts the services
    .venv/bin/python -m tests.services.jobs.flow_cost --flows 5 --idle 10

(the servers are the ``WORKUP_TEST_*`` ones, with ``scripts/test``'s defaults when unset).

The counters wrap the adapters' single funnels (``CassandraDb._exec`` and ``_batch``,
``AmqpTransport.call`` / ``publish_event``, ``GuardedCache``'s methods); work done between two
requests of the flow (events consumed, the outbox relays' scans) is charged to the step that ends
next, and ``--idle`` reports what the idle system does per second. ``--by-table`` lists, per
step, each lightweight transaction, write and batch with the table(s) it touches (the census of
``docs/performance.md``, issue 15's lightweight transactions). The driver is ``workup bench flow``'s own story (users reused).
"""

from __future__ import annotations

import argparse
import os
import re
from collections import Counter
from typing import Any, Awaitable, Callable

import trio

from workup.bench.flow import STEPS, Flow
from workup.bench.loadgen import Recorder
from workup.cache._guarded import GuardedCache
from workup.storage.cassandra import CassandraDb
from workup.testing import running_system
from workup.transport import AmqpTransport
from workup.transport.accounts import dev_url

COLUMNS = ("rpc", "event", "relay scan", "cql read", "cql write", "cql LWT", "cql batch", "cache")
AFTER = "after the flow"   # what the flow's events cause once its last answer is in (1 s)
COUNTS: Counter[str] = Counter()
SERVERS = {   # scripts/test's defaults
    "WORKUP_TEST_AMQP_URL": dev_url("test"),
    "WORKUP_TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
    "WORKUP_TEST_POSTGRES_URL": "postgresql://postgres@127.0.0.1:5432/postgres",
    "WORKUP_TEST_MONGO_URL": "mongodb://127.0.0.1:27017/",
    "WORKUP_TEST_CASSANDRA_HOSTS": "127.0.0.1:9042",
}


def kind_of(cql: str) -> str:
    """The table column a statement counts under (a read of the outbox table is a relay's scan:
    handlers only write and delete its rows)."""
    head = cql.lstrip().split(None, 1)[0].upper()
    if head == "SELECT":
        return "relay scan" if re.search(r"\.outbox(_intents|_buckets)? ", cql) else "cql read"
    if head == "BEGIN":
        return "cql batch"
    return "cql LWT" if " IF " in cql else "cql write"


_TABLE = re.compile(r"(?:INTO|UPDATE|FROM)\s+\w+\.(\w+)")


def by_table(cql: str) -> str:
    """``LWT jobs``, ``write outbox``, ``read inbox``: the kind of :func:`kind_of` and its table."""
    kind = kind_of(cql).replace("cql ", "")
    found = _TABLE.search(cql)
    return f"{kind} {found.group(1) if found else '?'}"


def _counted(name: str | Callable[..., str], fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        COUNTS[name if isinstance(name, str) else name(*args)] += 1
        return await fn(*args, **kwargs)
    return wrapper


def _batch_tables(_self: object, statements: list[tuple[str, list[Any]]], *_: Any) -> str:
    return "batch " + "+".join(sorted({by_table(cql).split()[-1] for cql, _ in statements}))


def install(tables: bool = False) -> None:
    """Count into :data:`COUNTS`, by kind, or by kind and table with ``tables``."""
    CassandraDb._exec = _counted(  # type: ignore[method-assign]
        lambda _self, cql, _params: by_table(cql) if tables else kind_of(cql), CassandraDb._exec)
    CassandraDb._batch = _counted(_batch_tables if tables else "cql batch", CassandraDb._batch)  # type: ignore[method-assign]
    AmqpTransport.call = _counted("rpc", AmqpTransport.call)  # type: ignore[method-assign]
    AmqpTransport.publish_event = _counted("event", AmqpTransport.publish_event)  # type: ignore[method-assign]
    for method in ("get", "set", "delete", "delete_many", "set_flag", "get_flag", "count"):
        setattr(GuardedCache, method, _counted("cache", getattr(GuardedCache, method)))


class StepRecorder(Recorder):
    """Charges the counts since the previous request to the step that just ended."""

    def __init__(self, table: dict[str, Counter[str]]) -> None:
        super().__init__(None, measured=False)
        self.table = table
        self.mark = Counter(COUNTS)

    def request(self, name: str, seconds: float, error: str | None = None) -> None:
        if error:
            raise RuntimeError(f"step {name} failed: {error}")
        now = Counter(COUNTS)
        self.table.setdefault(name, Counter()).update(now - self.mark)
        self.mark = now


async def measure(flows: int, idle: float, tables: bool = False) -> tuple[dict[str, Counter[str]], Counter[str]]:
    install(tables)
    table: dict[str, Counter[str]] = {}
    async with running_system("distributed") as system:
        flow = Flow(reuse_users=True)
        await flow.prepare(system.base_url, 1)
        try:
            await flow.run(0, Recorder(None, measured=False))     # warm-up: statements prepared
            for _ in range(flows):
                rec = StepRecorder(table)
                await flow.run(0, rec)
                await trio.sleep(1.0)
                rec.request(AFTER, 0.0)
        finally:
            await flow.aclose()
        await trio.sleep(4)      # the relays finish what the last flow left
        before = Counter(COUNTS)
        await trio.sleep(idle)
        quiet = Counter(COUNTS) - before
    return {s: Counter({k: v / flows for k, v in c.items()}) for s, c in table.items()}, \
        Counter({k: v / idle for k, v in quiet.items()})


def markdown(table: dict[str, Counter[str]], quiet: Counter[str]) -> str:
    lines = ["| step | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    total: Counter[str] = Counter()
    for step in (s for s in (*STEPS, AFTER) if s in table):
        total.update(table[step])
        lines.append(f"| {step} | " + " | ".join(f"{table[step][c]:g}" for c in COLUMNS) + " |")
    lines.append("| **flow** | " + " | ".join(f"**{total[c]:g}**" for c in COLUMNS) + " |")
    lines.append("| idle, per second | " + " | ".join(f"{quiet[c]:.1f}" for c in COLUMNS) + " |")
    return "\n".join(lines)


def census(table: dict[str, Counter[str]]) -> str:
    """Per step, the Cassandra statements by kind and table (``--by-table``), then the flow's sums."""
    total: Counter[str] = Counter()
    lines = []
    for step in (s for s in (*STEPS, AFTER) if s in table):
        cql = {k: v for k, v in sorted(table[step].items()) if k not in ("rpc", "event", "cache")}
        total.update(cql)
        lines.append(f"- {step}: " + ", ".join(f"{k} {v:g}" for k, v in cql.items()))
    lines.append("- **flow**: " + ", ".join(f"{k} {v:g}" for k, v in sorted(total.items())))
    lines.append(f"- lightweight transactions per flow: {sum(v for k, v in total.items() if k.startswith('LWT')):g}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0)
    parser.add_argument("--by-table", action="store_true", help="each statement kind with its table, per step")
    args = parser.parse_args()
    for name, default in SERVERS.items():
        os.environ.setdefault(name, default)
    table, quiet = trio.run(measure, args.flows, args.idle, args.by_table)
    print(census(table) if args.by_table else markdown(table, quiet))


if __name__ == "__main__":
    main()
