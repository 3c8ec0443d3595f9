"""Run as a child process by test_outbox_kill: a payments instance on RabbitMQ whose process is
SIGKILLed right after a payment commits, before anything is published (its relay is removed, the
worst case). Arguments: postgres URL, AMQP URL, queue prefix, data dir."""

from __future__ import annotations

import os
import signal
import sys

import trio

from workup.settings import Settings
from workup.transport import AmqpTransport
from workup.runtime import serve_service
from workup.services.payments import service
from workup.services.payments.store import SqlStore

_pay = SqlStore.pay


async def _pay_then_die(self, *args, **kwargs):
    outcome = await _pay(self, *args, **kwargs)
    print(f"committed {outcome.status}", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)     # after the commit, before the reply and any publish
    return outcome


async def main(pg_url: str, amqp_url: str, prefix: str, data_dir: str) -> None:
    SqlStore.pay = _pay_then_die
    service.background.clear()
    settings = Settings(data_dir=data_dir, payments_postgres_url=pg_url, amqp_url=amqp_url)
    async with AmqpTransport.connect(amqp_url, prefix=prefix) as transport:
        async with trio.open_nursery() as n:
            await n.start(lambda task_status: serve_service(service, settings, transport, concurrency=4,
                                                           control_secret="s", task_status=task_status))
            print("ready", flush=True)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:5])
