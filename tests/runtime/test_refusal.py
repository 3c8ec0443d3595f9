"""``refusal`` (``workup/runtime/dispatch.py``): the runtime's check of a request's caller
assertion, pure: ``None`` for a proven request, else the 403 problem it is answered with."""

from __future__ import annotations

import time
from dataclasses import dataclass

import msgspec

from workup.runtime.dispatch import refusal
from workup.transport.envelope import Caller
from workup.transport.identity import Identity


@dataclass(frozen=True)
class Req:   # a transport's Request, as the work loop hands it to refusal
    command: str
    body: bytes
    caller: Caller
    deadline: float
    request_id: str
    assertion: str


def test_proven_is_none_and_unproven_is_a_403_problem():
    keys = Identity.generate()
    caller, deadline = Caller("u1", "CLIENT"), time.time() + 10
    genuine = keys.sign("payments.Withdraw", caller, deadline, "r1", b"body")
    assert refusal(keys.for_service(), Req("payments.Withdraw", b"body", caller, deadline, "r1", genuine),
                   time.time()) is None
    reply = refusal(keys.for_service(), Req("payments.Withdraw", b"body", Caller("u2", "CLIENT"), deadline, "r1",
                                            genuine), time.time())
    assert reply is not None and reply.status == 403
    problem = msgspec.json.decode(reply.body)
    assert problem["title"] == "Forbidden" and problem["detail"].startswith("caller not proven: caller differs")
