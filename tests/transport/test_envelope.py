from decimal import Decimal

import msgspec
import pytest

from workup.amqp import Delivery, Properties
from workup.transport.envelope import (ANONYMOUS, DEFAULT_TIMEOUT, ROLES, Caller, Envelope, Role,
    from_headers, ok_reply, problem_reply, raise_for_problem, reply_body, to_headers)
from workup.transport.rabbitmq import AmqpDelivery
from workup.messages.payments import CreatePaymentRequest
from workup.problems import ProblemError, conflict


def test_reply_money_is_an_exact_json_number():
    reply = ok_reply({"balance": Decimal("1000000000.10")})
    assert reply.body == b'{"balance":1000000000.10}'
    assert msgspec.json.decode(reply.body, type=dict[str, Decimal]) == {"balance": Decimal("1000000000.10")}


def test_problem_reply_round_trips_as_problem_error():
    reply = problem_reply(conflict("insufficient balance").problem)
    assert reply.status == 409
    with pytest.raises(ProblemError) as info:
        raise_for_problem(reply)
    assert info.value.problem.detail == "insufficient balance" and info.value.status == 409
    with pytest.raises(ProblemError):
        reply_body(reply)


def test_empty_body_is_none():
    assert ok_reply(None, 204).body == b"" and reply_body(ok_reply(None, 204)) is None


def test_headers_round_trip_and_bad_role_dropped():
    env = Envelope("jobs.CreateJob", Caller("u1", "CLIENT"), 123.5, "rid")
    back = from_headers(env.command, env.request_id, to_headers(env))
    assert back == env
    forged = from_headers("x.Y", "r", {"caller": "u", "role": "ROOT", "deadline": 1})
    assert forged.caller.role is None


def test_from_headers_defaults_and_wire_garbage(monkeypatch):
    monkeypatch.setattr("workup.transport.envelope.time.time", lambda: 1000.0)
    bare = from_headers("jobs.GetJob", None, None)
    assert bare.caller is ANONYMOUS and bare.deadline == 1000.0 + DEFAULT_TIMEOUT
    assert len(bare.request_id) == 32
    # a role that is not a string (an AMQP table or array) is dropped, not a crash
    odd = from_headers("x.Y", "r", {"caller": "u", "role": ["ADMIN"], "deadline": 5})
    assert odd.caller == Caller("u", None) and odd.deadline == 5.0
    assert from_headers("x.Y", "r", {"role": "", "caller": ""}).caller is ANONYMOUS
    assert ROLES == set(Role.__args__)


def test_amqp_delivery_reads_the_envelope_with_from_headers():
    env = Envelope("jobs.CreateJob", Caller("u1", "FREELANCER"), 1234.5, "rid-1")
    raw = Delivery("ctag", 7, False, "", "workup.jobs")
    raw.body = b"\x80"
    raw.properties = Properties(type=env.command, message_id=env.request_id,
                                headers=to_headers(env))
    d = AmqpDelivery(raw)
    assert (d.command, d.caller, d.deadline, d.request_id, d.body, d.raw) == (
        env.command, env.caller, env.deadline, env.request_id, b"\x80", raw)


def test_messages_are_camel_case_and_strict():
    req = CreatePaymentRequest(milestone_id="m", contract_id="c", client_id="a", freelancer_id="b",
                               amount=Decimal("5.25"))
    wire = msgspec.json.decode(msgspec.json.encode(req))
    assert set(wire) == {"milestoneId", "contractId", "clientId", "freelancerId", "amount", "id"}
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"milestoneId":"m","contractId":"c","clientId":"a","freelancerId":"b",'
                            b'"amount":1,"extra":1}', type=CreatePaymentRequest)
