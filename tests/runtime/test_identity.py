"""Services check who sent a request, they do not believe the headers (issue 16's first row).

The finding, reproduced in both modes: someone with the broker password (distributed) or a
handle on the in-process queue (embedded) publishes ``payments.Withdraw`` with header
caller=<victim>. Forged, stripped, altered, expired and replayed-for-another-command envelopes
are answered 403 before any handler runs and the victim's balance does not move; genuine calls,
from the gateway's key and service to service, still work; a forged ``SERVICE`` role is refused.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import msgspec
import pytest
import trio

from workup import amqp
from workup.messages import payments as m
from workup.runtime import load_service
from workup.services.echo import Relay
from workup.testing import System, running_system
from workup.transport.envelope import SERVICE_CALLER, Caller, Envelope, Reply, encode, reply_body, to_headers
from workup.transport.identity import Identity
from workup.transport.local import LocalDelivery, LocalTransport, _Pending

pytestmark = pytest.mark.parametrize("mode", ["embedded", "distributed"])


async def publish_raw(sys: System, env: Envelope, body: bytes) -> Reply:
    """What the attacker does: put a message on the service's queue with envelope ``env``,
    bypassing the transport's ``call`` (which would sign it), and wait for the reply."""
    service = env.command.partition(".")[0]
    with trio.fail_after(max(env.deadline - time.time(), 1) + 5):
        if isinstance(sys.transport, LocalTransport):
            pending = _Pending()
            sys.transport._queue(service).put(LocalDelivery(
                env.command, body, env.caller, env.deadline, env.request_id, pending, env.assertion))
            await pending.event.wait()
            assert pending.reply is not None
            return pending.reply
        rpc = await amqp.RpcClient.open(sys.transport.conn)   # the stolen broker credential
        d = await rpc.call(sys.transport.queue_name(service), body, timeout=15, properties=amqp.Properties(
            type=env.command, message_id=env.request_id, headers=to_headers(env)))
        return msgspec.msgpack.decode(d.body, type=Reply)


def refused(reply: Reply) -> bool:
    body = msgspec.json.decode(reply.body) if reply.body else {}
    return reply.status == 403 and body.get("detail", "").startswith("caller not proven")


async def balance(sys: System, who: Caller) -> Decimal:
    return Decimal(str(reply_body(await sys.call("payments.GetMyWallet", m.GetMyWallet(), who))["balance"]))


async def test_forged_withdraw_is_refused_and_moves_nothing(mode):
    async with running_system(mode, ["payments"], gateway=False) as sys:
        victim = Caller(uuid.uuid4().hex, "CLIENT")
        await sys.ok("payments.CreateWallet", m.CreateWallet(user_id=victim.user_id, role="CLIENT"),
                     SERVICE_CALLER)
        await sys.ok("payments.Deposit", m.Deposit(amount=Decimal("500.00")), victim)   # genuine
        assert await balance(sys, victim) == Decimal("500.00")

        body = encode(m.Withdraw(amount=Decimal("123.45")))
        deadline = time.time() + 10
        cmd = "payments.Withdraw"

        def env(assertion: str, caller: Caller = victim, command: str = cmd, rid: str = "") -> Envelope:
            return Envelope(command, caller, deadline, rid or uuid.uuid4().hex, assertion)

        genuine = sys.transport.identity
        attacker = Identity.generate()
        rid = uuid.uuid4().hex
        cases = {
            # the finding as it was: headers alone
            "stripped": (env(""), body),
            "forged (another key)": (env(attacker.sign(cmd, victim, deadline, rid, body), rid=rid), body),
            # a genuine assertion of the victim's, for a smaller amount: the body was altered
            "altered": (env(genuine.sign(cmd, victim, deadline, rid, encode(m.Withdraw(amount=Decimal("1")))),
                            rid=rid), body),
            # a genuine assertion for reading the wallet, replayed to withdraw
            "another command": (env(genuine.sign("payments.GetMyWallet", victim, deadline, rid, body), rid=rid), body),
            # a genuine assertion whose deadline passed, sent with a fresh one
            "deadline extended": (env(genuine.sign(cmd, victim, time.time() - 1, rid, body), rid=rid), body),
            # the caller changed under a genuine assertion of someone else's
            "another caller": (env(genuine.sign(cmd, Caller("someone", "CLIENT"), deadline, rid, body), rid=rid), body),
        }
        for name, (envelope, payload) in cases.items():
            reply = await publish_raw(sys, envelope, payload)
            assert refused(reply), (name, reply.status, reply.body)
        # a genuine withdrawal replayed after its deadline: dropped unanswered, as any late request
        past = time.time() - 1
        late = Envelope(cmd, victim, past, rid, genuine.sign(cmd, victim, past, rid, body))
        with trio.move_on_after(1):
            await publish_raw(sys, late, body)
            raise AssertionError("an expired request was answered")
        assert sys.instances["payments"].expired >= 1
        assert await balance(sys, victim) == Decimal("500.00")

        # a forged SERVICE role (CreateWallet for a made-up user, CloseWallet of the victim),
        # under no assertion or one the gateway's key signed
        gateway_as_service = Identity(gateway_key=genuine.gateway_key, service_key=genuine.gateway_key)
        for request in (m.CreateWallet(user_id=uuid.uuid4().hex, role="CLIENT"), m.CloseWallet(user_id=victim.user_id)):
            command, payload = f"payments.{type(request).__name__}", encode(request)
            for assertion in ("", gateway_as_service.sign(command, SERVICE_CALLER, deadline, rid, payload)):
                reply = await publish_raw(sys, Envelope(command, SERVICE_CALLER, deadline, rid, assertion), payload)
                assert refused(reply), (command, reply.status, reply.body)

        # and the genuine withdrawal still works (the wallet is open)
        await sys.ok("payments.Withdraw", m.Withdraw(amount=Decimal("123.45")), victim)
        assert await balance(sys, victim) == Decimal("376.55")


async def test_service_to_service_calls_carry_the_service_identity(mode):
    async with running_system(mode, [], gateway=False) as sys:
        await sys.start("echo", load_service("echo"))
        who = reply_body(await sys.call("echo.Relay", Relay(), Caller("u1", "CLIENT")))
        assert (who["userId"], who["role"]) == (None, "SERVICE"), who
        assert sys.instances["echo"].refused == 0
