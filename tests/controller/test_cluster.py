"""Every controller command observed on two running `workup worker` instances (real broker), and
the controller as a user tries it: `--instance`, refusals in the table, keys, unknown names."""

from __future__ import annotations

import os
import signal

import msgspec
import psycopg
import pytest
import trio

from workup.controller import status_rows
from workup.runtime.control import ControlReply, control_key, instance_id, sign
from workup.transport.envelope import Caller, reply_body
from workup.services.echo import Echo, Sleep, Tally

from ._cluster import SECRET, cluster

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


def _table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[1:]]


async def test_one_instance_refusals_and_keys_through_the_cli(tmp_path):
    async with cluster(tmp_path) as c:
        await c.start_worker("--processes", "1", "--concurrency", "4")
        await c.start_worker("--processes", "1", "--concurrency", "4")
        before = await c.processes(2)
        ids = sorted(instance_id(r.host, r.pid) for r in before)
        sup = {instance_id(r.host, r.pid): instance_id(r.host, r.status.supervisor) for r in before}

        # the status table shows each process's ID, as --instance takes it
        rc, out, _ = await c.ctl("status", "--expect", "4")
        assert rc == 0 and out.splitlines()[0].split()[-1] == "ID"
        assert sorted(row[-1] for row in _table(out)) == ids

        # one process, not its sibling; no one else answers
        rc, out, _ = await c.ctl("set-max-threads", "5", "--instance", ids[0])
        assert rc == 0 and out.splitlines() == [f"echo {ids[0]} ok max threads 5"]
        threads = {instance_id(r.host, r.pid): r.status.max_threads for r in await c.processes(2)}
        assert threads == {ids[0]: 5, ids[1]: 4}
        replies = await c.ctl_json("status", "--instance", ids[1])
        assert [instance_id(r.host, r.pid) for r in replies] == [ids[1]]

        # a supervisor's ID: that worker alone grows; a child cannot take set-processes itself
        rc, out, _ = await c.ctl("set-processes", "2", "--instance", sup[ids[1]])
        assert rc == 0 and out.splitlines() == [f"echo {sup[ids[1]]} ok processes 2"]
        after = await c.processes(3)
        assert sum(1 for r in after if instance_id(r.host, r.status.supervisor) == sup[ids[1]]) == 2
        rc, out, _ = await c.ctl("set-processes", "2", "--instance", ids[0], "--expect", "1")
        assert rc == 1 and out.strip() == f"echo {ids[0]} FAILED set-processes is applied by the supervisor: address {sup[ids[0]]}"

        # a wrong key: each instance's refusal is a row of the table, and the exit code says so
        rc, out, err = await c.ctl("status", "--expect", "5", key="not-the-key")
        assert rc == 1 and len(_table(out)) == 5 and out.count("refused: bad signature") == 5, out
        assert "5 of 5 instances refused the message: bad signature" in err and "WORKUP_CONTROL_KEY" in err
        rc, out, _ = await c.ctl("status", "--expect", "5", "--json", key="not-the-key")
        assert {tuple(sorted(r)) for r in msgspec.json.decode(out)} == {("detail", "host", "ok", "pid", "service")}

        # no key: exit 2 at once, and none is made; the workers' data dir is enough
        rc, out, err = await c.ctl("status", key=None)
        assert rc == 2 and "WORKUP_CONTROL_KEY" in err and "--data-dir" in err and out == ""
        assert not (tmp_path / "data" / "control.key").exists()
        keys = tmp_path / "keys"
        keys.mkdir()
        (keys / "control.key").write_text(SECRET + "\n")
        rc, out, _ = await c.ctl("status", "--expect", "5", "--data-dir", str(keys), key=None)
        assert rc == 0 and len(_table(out)) == 3

        # an unknown service or command: exit 2, one line naming the choices
        rc, out, err = await c.ctl("freeze", service="nosuchservice")
        assert rc == 2 and err.splitlines() == [
            "Error: unknown service 'nosuchservice'; one of: all, contracts, echo, jobs, payments, users"]
        rc, out, err = await c.ctl("bogus")
        assert rc == 2 and len(err.splitlines()) == 1 and "one of: add-command," in err


async def test_a_replayed_control_message_is_refused_by_restarted_and_scaled_children(tmp_path):
    """A genuine message read off the control exchange and re-sent: refused by the running
    process, by the child the supervisor restarts after a SIGKILL and by one it starts on
    set-processes; the supervisor's own replay (over stdin) still configures them."""
    async with cluster(tmp_path) as c:
        await c.start_worker("--processes", "1", "--concurrency", "4")
        [first] = await c.processes(1)
        captured = sign(control_key(SECRET), "echo", "set-max-threads", ["7"], validity=60)

        async def send(expect: int) -> list[ControlReply]:
            raw = await c.t.broadcast_control("echo", captured, timeout=3.0, expect=expect)
            return [msgspec.json.decode(r, type=ControlReply) for r in raw]

        assert [(r.ok, r.detail) for r in await send(1)] == [(True, "max threads 7")]
        again = await send(2)      # the child and the supervisor both refuse it now
        assert len(again) == 2 and {r.detail for r in again} == {"refused: replayed"}

        os.kill(first.pid, signal.SIGKILL)       # the supervisor restarts the child
        with trio.fail_after(30):
            while True:
                [restarted] = await c.processes(1)
                if restarted.pid != first.pid:
                    break
                await trio.sleep(0.2)
        assert restarted.status.max_threads == 7   # remembered and replayed over stdin
        again = await send(2)
        assert len(again) == 2 and {r.detail for r in again} == {"refused: replayed"}

        rc, out, err = await c.ctl("set-processes", "2")    # a genuine new message scales out
        assert rc == 0, (out, err)
        replies = await c.processes(2)
        assert {r.status.max_threads for r in replies} == {7}
        again = await send(3)
        assert len(again) == 3 and {r.detail for r in again} == {"refused: replayed"}
