"""Run as a child process by ``tests/services/users/test_once.py``: a users instance on RabbitMQ
and FerretDB whose process is SIGKILLed right after a ``RemoveSkill`` is saved (its answer in the
same document), before the reply and the ack. Arguments: MongoDB URL, AMQP URL, queue prefix,
data dir. It prints ``ready``, then ``committed``."""

from __future__ import annotations

import os
import signal
import sys

import trio

from workup.services.users import service
from workup.services.users.mongo import MongoUserStore
from workup.services.users.records import UserRecord
from workup.settings import Settings
from tests.services._dying import serve_alone

_save = MongoUserStore.save


async def _save_then_die(self: MongoUserStore, user: UserRecord) -> bool:
    saved = await _save(self, user)
    if saved and any(row.key.startswith("users.RemoveSkill:") for row in user.inbox):
        print("committed", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)     # after the commit, before the reply and the ack
    return saved


async def main(mongo_url: str, amqp_url: str, prefix: str, data_dir: str) -> None:
    MongoUserStore.save = _save_then_die    # type: ignore[method-assign]
    await serve_alone(service, Settings(data_dir=data_dir, users_mongo_url=mongo_url, amqp_url=amqp_url), prefix)


if __name__ == "__main__":
    trio.run(main, *sys.argv[1:5])
