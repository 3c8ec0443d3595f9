"""``workup worker users --processes 2`` on one SQLite file: racing registrations of one email in
both processes admit exactly one, and every process serves what the other wrote."""

from __future__ import annotations

import uuid

import trio

from workup.transport.envelope import Caller, reply_body
from workup.messages import users as m
from workup.transport import AmqpTransport

from ._procs import start_worker, stop, until


async def test_two_processes_share_one_store(amqp_url, tmp_path):
    prefix = f"wtusersmp{uuid.uuid4().hex[:10]}"
    worker = start_worker(amqp_url, prefix, str(tmp_path), processes=2)
    try:
        async with AmqpTransport.connect(amqp_url, prefix=prefix) as t:
            async def both_up() -> bool:
                return await t.consumer_count("users") >= 2
            await until(both_up, "two users processes")

            statuses: list[int] = []

            async def register(i: int) -> None:
                req = (m.RegisterClient(email="Race@Example.com", password="password1", client_name="C") if i % 2
                       else m.RegisterFreelancer(email="race@example.COM", password="password1", full_name="F"))
                reply = await t.call(f"users.{type(req).__name__}", req, caller=Caller(), timeout=30)
                statuses.append(reply.status)

            async with trio.open_nursery() as n:
                for i in range(12):
                    n.start_soon(register, i)
            assert sorted(statuses) == [201] + [409] * 11

            # 20 logins (the broker hands them to both processes) all find the account
            login = m.Login(email="race@example.com", password="password1")
            ids = set()
            for _ in range(20):
                reply = await t.call("users.Login", login, caller=Caller(), timeout=30)
                ids.add(reply_body(reply)["userId"])
            assert len(ids) == 1
            await t.delete_topology(["users"])
    finally:
        await trio.to_thread.run_sync(stop, worker)
