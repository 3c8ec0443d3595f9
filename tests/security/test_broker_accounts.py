"""One broker account per role (workup/transport/accounts.py), against the real RabbitMQ.

The dev node's accounts are the ones `ops/dev/services up` creates (vhost `workup`, passwords in
`~/.cache/workup/run/rabbitmq/accounts/`); each test runs under a prefix of its own. Deleting
`guest` is tried on a private node (tests/amqp/_private_broker.py): the dev node is shared.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import msgspec
import pytest
import trio

from workup import amqp
from workup.amqp import ChannelClosed, Properties
from workup.runtime import Context, serve_service
from workup.runtime.control import ControlReply, control_key, sign
from workup.services.echo import Echo, Notify, Whoami
from workup.settings import Settings
from workup.testing import fake_service
from workup.transport import AmqpTransport
from workup.transport.accounts import (CONTROLLER, ROLES, SERVICES, account, controller_for, definitions,
                                       dev_accounts_dir, dev_url, password_hash, permissions, role_amqp_url,
                                       role_url)
from workup.transport.envelope import Caller, reply_body

from ..amqp._private_broker import PrivateBroker

ROOT = Path(__file__).resolve().parents[2]
SECRET = "broker-accounts-control-key"
CLIENT = Caller("u1", "CLIENT")


def prefix() -> str:
    return f"acct{secrets.token_hex(4)}"


# -- pure: the permission regexes ------------------------------------------------------------

def _allowed(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def test_each_service_reaches_its_own_names_only():
    for svc in SERVICES:
        p = permissions(svc)
        assert _allowed(p.read, f"workup.{svc}") and _allowed(p.configure, f"workup.{svc}.dead")
        assert _allowed(p.read, f"workup.control.{svc}") and _allowed(p.write, "workup.events")
        assert _allowed(p.write, "amq.default") and _allowed(p.configure, "amq.gen-abc")
        for other in set(SERVICES) - {svc}:
            assert not _allowed(p.read, f"workup.{other}") and not _allowed(p.configure, f"workup.{other}")
            assert not _allowed(p.read, f"workup.control.{other}")
        for role in ROLES:   # nobody but the controller writes any control exchange
            if role != "controller":
                assert not _allowed(permissions(role).write, f"workup.control.{svc}"), role
        assert _allowed(permissions("controller").write, f"workup.control.{svc}")
    gw = permissions("gateway")
    assert not any(_allowed(gw.read, f"workup.{s}") for s in SERVICES)
    assert permissions("autoscaler") == ("^$", "^$", "^$")
    literal = permissions("users", re.escape("workup"))
    assert _allowed(literal.read, "workup.users") and not _allowed(literal.read, "other.users")
    with pytest.raises(ValueError):
        permissions("media")


def test_role_urls_and_definitions(tmp_path):
    url = "amqp://someone:old@broker:5672/workup?heartbeat=30"
    assert role_url(url, "jobs", "p@ss/w") == "amqp://workup-jobs:p%40ss%2Fw@broker:5672/workup?heartbeat=30"
    (tmp_path / "workup-gateway").write_text("gw-secret\n")
    assert role_amqp_url(url, "gateway", str(tmp_path)) == "amqp://workup-gateway:gw-secret@broker:5672/workup?heartbeat=30"
    assert role_amqp_url(url, "echo", str(tmp_path)) == url    # no account for it: the URL as it is
    assert role_amqp_url(url, "gateway", None) == url
    assert controller_for("workup-users") == CONTROLLER
    assert controller_for("workup-test") is None and controller_for(None) is None

    salt = b"\x01\x02\x03\x04"
    raw = base64.b64decode(password_hash("pw", salt))
    assert raw == salt + hashlib.sha256(salt + b"pw").digest()
    doc = definitions({"gateway": "a", "controller": "b"})
    assert doc["vhosts"] == [{"name": "workup"}]
    assert [u["name"] for u in doc["users"]] == ["workup-gateway", "workup-controller"]   # type: ignore[index]


def test_definitions_script_generates_passwords_once(tmp_path):
    """What ops/dev/services runs with the system python3 (standard library only)."""
    folder = tmp_path / "accounts"
    cmd = [sys.executable, "-I", str(ROOT / "workup/transport/accounts.py"), "definitions", "--passwords", str(folder)]
    missing = subprocess.run(cmd, capture_output=True, text=True)
    assert missing.returncode == 2 and "no password file for workup-gateway" in missing.stderr
    first = subprocess.run([*cmd, "--create", "--test"], capture_output=True, text=True, check=True)
    doc = json.loads(first.stdout)
    assert {u["name"] for u in doc["users"]} == {account(r) for r in ROLES} | {"workup-test"}
    assert all(oct((folder / account(r)).stat().st_mode & 0o777) == "0o600" for r in ROLES)
    before = {p.name: p.read_text() for p in folder.iterdir()}
    subprocess.run([*cmd, "--create", "--test"], capture_output=True, check=True)
    assert {p.name: p.read_text() for p in folder.iterdir()} == before    # generated once


def test_swarm_script_gives_the_same_accounts_for_the_literal_prefix(tmp_path):
    out = subprocess.run([str(ROOT / "ops/swarm/broker-accounts"), str(tmp_path)], capture_output=True,
                         text=True, check=True)
    doc = json.loads(out.stdout)
    assert {u["name"] for u in doc["users"]} == {account(r) for r in ROLES}   # no test account
    perms = {p["user"]: p for p in doc["permissions"]}
    assert perms["workup-users"]["read"] == permissions("users", re.escape("workup")).read
    assert _allowed(perms["workup-controller"]["write"], "workup.control.jobs")
    assert not _allowed(perms["workup-controller"]["write"], "other.control.jobs")
    bad = subprocess.run([str(ROOT / "ops/swarm/broker-accounts")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "usage" in bad.stderr


# -- the dev node ----------------------------------------------------------------------------

def _require_accounts() -> None:
    if not (dev_accounts_dir() / "workup-gateway").is_file():
        pytest.fail(f"no broker accounts in {dev_accounts_dir()}: run `bash ops/dev/services up rabbitmq`",
                    pytrace=False)


async def _refused(role: str, action) -> str:
    """Run ``action(channel)`` logged in as ``role``; the broker's refusal (it must refuse)."""
    async with amqp.connect(dev_url(role)) as conn:
        ch = await conn.channel()
        with pytest.raises(ChannelClosed) as err:
            await action(ch)
            await ch.qos(1)   # a round trip: an asynchronous refusal (publish) arrives before it
        return str(err.value)


@asynccontextmanager
async def transports(*roles: str) -> AsyncIterator[list[AmqpTransport]]:
    """One transport per role's account under a fresh prefix; its topology deleted afterwards."""
    _require_accounts()
    p = prefix()
    async with AsyncExitStack() as stack:
        cleanup = await stack.enter_async_context(AmqpTransport.connect(dev_url("test"), prefix=p))
        try:
            yield [await stack.enter_async_context(AmqpTransport.connect(dev_url(r), prefix=p)) for r in roles]
        finally:
            await cleanup.delete_topology(list(SERVICES))


async def echo(ctx: Context[None], req: Echo) -> Echo:
    return req


async def notify(ctx: Context[None], req: Notify) -> None:
    await ctx.emit(req.type, req.recipients, {})


async def ask_payments(ctx: Context[None], req: Whoami) -> object:
    return await ctx.call("payments.Whoami", Whoami(), timeout=5)


async def whoami(ctx: Context[None], req: Whoami) -> dict[str, object]:
    return {"role": ctx.caller.role}


async def _serve(nursery: trio.Nursery, transport: AmqpTransport, name: str, **handlers) -> None:
    svc = fake_service(name, **handlers)
    await nursery.start(lambda task_status: serve_service(svc, Settings(amqp_url=dev_url(name)), transport,
                                                          concurrency=4, grace=1, control_secret=SECRET,
                                                          task_status=task_status))


async def _status(t: AmqpTransport, service: str) -> list[ControlReply]:
    raw = await t.broadcast_control(service, sign(control_key(SECRET), service, "status", []), timeout=3, expect=1)
    return [msgspec.json.decode(r, type=ControlReply) for r in raw]


async def test_each_role_does_its_work_and_no_more():
    async with transports("users", "payments", "gateway", "controller") as (users, payments, gateway, controller):
        p = users.prefix
        async with trio.open_nursery() as n:
            await _serve(n, users, "users", Echo=echo, Notify=notify, Whoami=ask_payments)
            await _serve(n, payments, "payments", Whoami=whoami)
            got = []

            async def collect(task_status=trio.TASK_STATUS_IGNORED):
                events = gateway.subscribe()
                task_status.started()
                async for e in events:
                    got.append(e)
                    return
            n.start_soon(collect)
            await trio.sleep(0.3)
            # the gateway calls a service; a service emits an event the gateway reads; a service
            # calls another one; the controller's status reaches the instances
            assert reply_body(await gateway.call("users.Echo", Echo("hi", 3), caller=CLIENT, timeout=5)) == {
                "text": "hi", "n": 3}
            assert (await gateway.call("users.Notify", Notify("t.done", ["u1"]), caller=CLIENT, timeout=5)).status == 200
            with trio.fail_after(5):
                while not got:
                    await trio.sleep(0.02)
            assert got[0].type == "t.done"
            body = reply_body(await gateway.call("users.Whoami", Whoami(), caller=CLIENT, timeout=5))
            assert body == {"role": "SERVICE"}
            replies = await _status(controller, "users")
            assert replies and all(r.ok for r in replies), replies
            n.cancel_scope.cancel()
        # beyond its work, on the topology the instances declared
        async def consume_users(ch):
            await ch.consume(f"{p}.users")

        async def publish_control(ch):
            await ch.publish(b"x", exchange=f"{p}.control.users")

        async def publish_control_as_controller(ch):
            await ch.publish(b"x", routing_key=f"{p}.nowhere", properties=Properties(user_id=CONTROLLER))

        assert "ACCESS_REFUSED" in await _refused("gateway", consume_users)
        assert "ACCESS_REFUSED" in await _refused("gateway", publish_control)
        assert "ACCESS_REFUSED" in await _refused("jobs", consume_users)
        assert "ACCESS_REFUSED" in await _refused("jobs", publish_control)
        assert "ACCESS_REFUSED" in await _refused("users", publish_control)   # not even its own
        assert "ACCESS_REFUSED" in await _refused("autoscaler", publish_control)
        # a forged user_id: the broker checks it against the login
        assert "PRECONDITION_FAILED" in await _refused("gateway", publish_control_as_controller)


async def test_instances_take_control_only_from_the_controller_account():
    """The control key alone is not enough: a message signed with it but published by another
    account (here the test account, which may write the control exchange) is refused, unapplied."""
    async with transports("users", "controller", "test") as (users, controller, other):
        async with trio.open_nursery() as n:
            await _serve(n, users, "users", Echo=echo)
            raw = await other.broadcast_control("users", sign(control_key(SECRET), "users", "freeze", []),
                                                timeout=3, expect=1)
            refused = [msgspec.json.decode(r, type=ControlReply) for r in raw]
            assert refused and all(not r.ok and r.detail == "refused: wrong sender" for r in refused), refused
            status = await _status(controller, "users")
            assert status and status[0].ok and status[0].status and not status[0].status.frozen, status   # not applied
            n.cancel_scope.cancel()


# -- a private node: what `ops/dev/services up` does to a fresh one ------------------------------

async def test_fresh_node_has_the_accounts_and_no_guest(tmp_path):
    broker = PrivateBroker()
    try:
        broker.start()
        folder = tmp_path / "accounts"
        defs = broker.dir / "definitions.json"
        out = subprocess.run([sys.executable, "-I", str(ROOT / "workup/transport/accounts.py"), "definitions",
                              "--create", "--test", "--passwords", str(folder)], capture_output=True, check=True)
        defs.write_bytes(out.stdout)
        shutil.chown(defs, "rabbitmq", "rabbitmq")
        broker.ctl("import_definitions", str(defs))
        broker.ctl("delete_user", "guest")
        base = f"amqp://127.0.0.1:{broker.port}/workup"
        with pytest.raises(amqp.AMQPError):   # guest: refused at login
            async with amqp.connect(f"amqp://guest:guest@127.0.0.1:{broker.port}/"):
                pass
        for role in ROLES:   # the system's config logs each role in as its own account
            url = role_amqp_url(base, role, str(folder))
            assert amqp.parse_url(url).username == account(role)
            async with amqp.connect(url) as conn:
                await (await conn.channel()).qos(1)
        assert "guest" not in broker.ctl("list_users")
    finally:
        broker.remove()


def test_dev_harness_never_uses_guest():
    from workup.testing import env_value
    url = env_value("WORKUP_TEST_AMQP_URL")
    assert amqp.parse_url(url).username != "guest"
    if not os.environ.get("WORKUP_TEST_AMQP_URL"):
        assert amqp.parse_url(url).username == "workup-test" and amqp.parse_url(url).virtual_host == "workup"


async def test_cli_roles_log_in_as_their_own_accounts(tmp_path):
    """`workup worker users` and `workup control` given only the broker's address and the
    accounts folder: the worker takes `workup control`'s status (sent as workup-controller) and
    refuses the same signed message sent by the test's own account."""
    _require_accounts()
    p = prefix()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKUP_USERS_", "WORKUP_REDIS_"))}
    env.update(WORKUP_AMQP_URL="amqp://127.0.0.1:5672/workup", WORKUP_AMQP_ACCOUNTS_DIR=str(dev_accounts_dir()),
               WORKUP_AMQP_PREFIX=p, WORKUP_CONTROL_KEY=SECRET, WORKUP_DATA_DIR=str(tmp_path / "data"),
               WORKUP_LOG_LEVEL="WARNING")
    worker = subprocess.Popen([sys.executable, "-m", "workup", "worker", "users", "--grace", "1"], env=env,
                              cwd=ROOT, stdin=subprocess.DEVNULL)
    async with AmqpTransport.connect(dev_url("test"), prefix=p) as t:
        try:
            with trio.fail_after(60):
                while await t.consumer_count("users") < 1:
                    assert worker.poll() is None, "workup worker users exited"
                    await trio.sleep(0.2)
            out = await trio.run_process([sys.executable, "-m", "workup", "control", "users", "status", "--json"],
                                         env=env, capture_stdout=True, capture_stderr=True, check=False)
            answers = msgspec.json.decode(out.stdout or b"[]")
            assert answers and all(a["ok"] for a in answers), (out.returncode, out.stderr)
            raw = await t.broadcast_control("users", sign(control_key(SECRET), "users", "status", []),
                                            timeout=3, expect=2)
            replies = [msgspec.json.decode(r, type=ControlReply) for r in raw]
            assert replies and all(r.detail == "refused: wrong sender" for r in replies), replies
        finally:
            worker.terminate()
            await trio.to_thread.run_sync(worker.wait, 30)
            await t.delete_topology(["users"])


async def test_a_redelivery_is_republished_under_the_service_account():
    """A request the gateway published (user_id workup-gateway), redelivered after its consumer
    died: the service re-publishes it with the attempt count raised under its own user_id (the
    broker refuses another's) and then handles it."""
    from workup.transport.envelope import Envelope, encode, to_headers
    from workup.transport.rabbitmq import ATTEMPTS_HEADER

    async with transports("users", "gateway") as (users, gateway):
        p = users.prefix
        async with users.consume("users", prefetch=4) as source:   # declares the queues
            body = encode(Echo("again"))
            env = Envelope("users.Echo", CLIENT, 4e9, "r1", gateway.identity.sign("users.Echo", CLIENT, 4e9, "r1", body))
            ch = await gateway.conn.channel(confirms=True)
            await ch.publish(body, routing_key=f"{p}.users", properties=Properties(
                type="users.Echo", message_id="r1", headers=to_headers(env), user_id="workup-gateway"))
            with trio.fail_after(5):   # delivered, never settled: the channel closes under it
                while await users.consumer_count("users") < 1 or (
                        await ch.declare_queue(f"{p}.users", passive=True)).message_count:
                    await trio.sleep(0.05)
        async with users.consume("users", prefetch=4) as source:
            with trio.fail_after(10):
                again = await source.receive()
            assert again.raw.properties.user_id == "workup-users"
            assert again.raw.properties.headers[ATTEMPTS_HEADER] == 1 and again.request_id == "r1"
            again.raw.ack()
