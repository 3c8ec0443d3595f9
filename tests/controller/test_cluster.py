"""Every controller command observed on two running `workup worker` instances (real broker)."""

from __future__ import annotations

import os
import signal

import psycopg
import pytest
import trio

from workup.controller import status_rows
from workup.transport.envelope import Caller, reply_body
from workup.services.echo import Echo, Sleep, Tally

from ._cluster import cluster

CLIENT = Caller("u1", "CLIENT")
PG_URL = os.environ.get("WORKUP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

HOT = '''
from workup.services.echo import Echo

async def handler(ctx, req: Echo):
    return {"text": "hot " + req.text}
'''


def pg_connections(app: str) -> int:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                            (app,)).fetchone()[0]


async def wait_for(predicate, timeout=10.0):
    with trio.fail_after(timeout):
        while not await predicate():
            await trio.sleep(0.1)


async def test_controller_commands_on_two_instances(tmp_path):
    app = f"workup-test-{os.getpid()}-{tmp_path.name[-6:]}"
    pg = f"{PG_URL}{'&' if '?' in PG_URL else '?'}application_name={app}"
    async with cluster(tmp_path, WORKUP_PAYMENTS_POSTGRES_URL=pg) as c:
        await c.start_worker("--processes", "1", "--concurrency", "4")
        await c.start_worker("--processes", "1", "--concurrency", "4")
        before = await c.processes(2)
        assert {r.status.max_threads for r in before} == {4}
        assert len({r.status.supervisor for r in before}) == 2
        await wait_for(lambda: trio.to_thread.run_sync(lambda: pg_connections(app) == 4))

        # status table from the CLI
        rc, out, _ = await c.ctl("status", "--expect", "4")
        assert rc == 0 and out.splitlines()[0].split()[:2] == ["SERVICE", "HOST"] and len(out.splitlines()) == 3

        rc, out, _ = await c.ctl("set-max-threads", "7", "--expect", "2")
        assert rc == 0 and out.count("ok max threads 7") == 2
        assert {r.status.max_threads for r in await c.processes(2)} == {7}

        replies = await c.ctl_json("set-max-db-connections", "3", "--expect", "2")
        assert [r.status.db_pool_size for r in replies] == [3, 3]
        await wait_for(lambda: trio.to_thread.run_sync(lambda: pg_connections(app) == 6))

        # a forged message (wrong key) is refused and changes nothing
        rc, out, _ = await c.ctl("set-max-threads", "99", "--expect", "2", key="not-the-key")
        assert rc == 1 and out.count("FAILED refused") == 2
        assert {r.status.max_threads for r in await c.processes(2)} == {7}

        await c.ctl("delete-command", "Echo", "--expect", "2")
        assert (await c.t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=5)).status == 503
        await c.ctl("add-command", "Echo", "--expect", "2")
        assert (await c.t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=5)).status == 200

        hot = tmp_path / "hot_echo.py"
        hot.write_text(HOT)
        rc, out, _ = await c.ctl("update-command", "Echo", str(hot), "--expect", "2")
        assert rc == 0, out
        for _ in range(6):  # both instances answer with the new handler, no restart
            assert reply_body(await c.t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=5)) == {"text": "hot x"}
        bad = tmp_path / "bad.py"
        bad.write_text(HOT.replace("req: Echo", "req: str"))
        rc, out, _ = await c.ctl("update-command", "Echo", str(bad), "--expect", "2")
        assert rc == 1 and out.count("old handler stays") == 2

        replies = await c.ctl_json("set-logging-level", "warning", "--expect", "2")
        assert [r.status.log_level for r in replies] == ["WARNING", "WARNING"]

        # freeze: messages stay queued; start drains them
        replies = await c.ctl_json("freeze", "--expect", "2")
        assert all(r.ok and r.status.frozen for r in replies)
        await wait_for(lambda: trio.to_thread.run_sync(lambda: pg_connections(app) == 0))
        await trio.sleep(1.1)
        with pytest.raises(Exception) as info:
            await c.t.call("echo.Echo", Echo("x"), caller=CLIENT, timeout=2)
        assert type(info.value).__name__ == "NoResponder"
        answers = []

        async def queued(i):
            r = await c.t.call("echo.Echo", Echo("q", i), caller=CLIENT, timeout=30, require_consumer=False)
            answers.append(reply_body(r))
        async with trio.open_nursery() as n:
            for i in range(4):
                n.start_soon(queued, i)
            ch = await c.t.conn.channel()

            async def four_queued():
                return (await ch.declare_queue(f"{c.prefix}.echo", passive=True)).message_count == 4
            await wait_for(four_queued)
            await trio.sleep(0.3)
            assert answers == []
            replies = await c.ctl_json("start", "--expect", "2")
            assert all(r.ok and not r.status.frozen for r in replies)
        assert len(answers) == 4 and all(a["text"] == "hot q" for a in answers)

        # set-processes: each supervisor grows to 2; a new child gets the siblings' configuration
        rc, out, _ = await c.ctl("set-processes", "2", "--expect", "2")
        assert rc == 0 and out.count("ok processes 2") == 2
        after = await c.processes(4)
        assert {r.status.max_threads for r in after} == {7}
        assert {r.status.versions["echo.Echo"].split(":")[0] for r in after} == {"v2"}
        rows = status_rows(await c.status(expect=6))
        assert [(r.role, r.processes) for r in rows] == [("process", 2)] * 4


async def test_sigkill_mid_command_is_redelivered_and_answered_once(tmp_path):
    path = tmp_path / "tally"
    async with cluster(tmp_path) as c:
        sup = await c.start_worker("--processes", "1")
        await c.processes(1)
        replies = []

        async def call():
            replies.append(await c.t.call("echo.Tally", Tally(str(path), sleep=1.5), caller=CLIENT, timeout=30))
        async with trio.open_nursery() as n:
            n.start_soon(call)
            await wait_for(lambda: trio.to_thread.run_sync(path.exists))
            victim = int(path.read_text().split()[0])
            os.kill(victim, signal.SIGKILL)
        assert len(replies) == 1
        body = reply_body(replies[0])
        pids = path.read_text().split()
        assert body["attempts"] == 2 and len(pids) == 2 and int(pids[1]) != victim
        await trio.sleep(1.0)
        assert len(path.read_text().split()) == 2  # answered once: no third run
        assert sup.returncode is None


async def test_sigterm_drains_in_flight_work(tmp_path):
    async with cluster(tmp_path) as c:
        sup = await c.start_worker("--processes", "2")
        await c.processes(2)
        results = []

        async def call():
            results.append(await c.t.call("echo.Sleep", Sleep(1.0), caller=CLIENT, timeout=10))
        async with trio.open_nursery() as n:
            for _ in range(4):
                n.start_soon(call)
            await trio.sleep(0.3)
            sup.send_signal(signal.SIGTERM)
        assert [r.status for r in results] == [200] * 4
        with trio.fail_after(10):
            assert await sup.wait() == 0
