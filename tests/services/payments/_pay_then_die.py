"""Run as a child process by test_outbox_kill: a payments instance on RabbitMQ whose process is
SIGKILLed right after one operation commits, before anything is published or acked (its relay is
removed, the worst case). Arguments: postgres URL, AMQP URL, queue prefix, data dir, and
optionally the store operation to die after (``pay``, ``deposit`` or ``withdraw``; ``pay`` when
omitted). It prints ``ready``, then ``committed <status>`` and ``body <JSON answer>``."""

from __future__ import annotations

import os
import signal
import sys

import trio

from workup.settings import Settings
from workup.services.payments import service
from workup.services.payments.store import SqlStore
from tests.services._dying import serve_alone


def _then_die(op):
    async def wrapped(self, *args, **kwargs):
        outcome = await op(self, *args, **kwargs)
        print(f"committed {outcome.status}", flush=True)
        print(f"body {outcome.body.decode()}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)     # after the commit, before the reply and any publish
        return outcome
    return wrapped


async def main(pg_url: str, amqp_url: str, prefix: str, data_dir: str, op: str = "pay") -> None:
    setattr(SqlStore, op, _then_die(getattr(SqlStore, op)))
    await serve_alone(service, Settings(data_dir=data_dir, payments_postgres_url=pg_url, amqp_url=amqp_url), prefix)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:6])
