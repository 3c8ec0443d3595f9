from decimal import Decimal

import msgspec
import pytest

from workup.transport.envelope import (Caller, Envelope, from_headers, ok_reply, problem_reply,
    raise_for_problem, reply_body, to_headers)
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


def test_messages_are_camel_case_and_strict():
    req = CreatePaymentRequest(milestone_id="m", contract_id="c", client_id="a", freelancer_id="b",
                               amount=Decimal("5.25"))
    wire = msgspec.json.decode(msgspec.json.encode(req))
    assert set(wire) == {"milestoneId", "contractId", "clientId", "freelancerId", "amount"}
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"milestoneId":"m","contractId":"c","clientId":"a","freelancerId":"b",'
                            b'"amount":1,"extra":1}', type=CreatePaymentRequest)
