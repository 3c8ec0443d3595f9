"""What the controller's messages mean to an instance: addressing one instance (``--instance``),
the refusal reasons, and a refused reply that carries nothing but the reason (in-process)."""

from __future__ import annotations

import base64
import json
import os

import msgspec
import pytest
import trio

from workup.runtime import load_service, serve_service
from workup.runtime.control import (ControlError, ControlMessage, ControlRefused, Verifier, addressed,
    apply_in_child, control_key, instance_id, sign)
from workup.runtime.instance import HOST
from workup.settings import Settings
from workup.transport import LocalTransport

KEY = control_key("k1")
NOW = 1_800_000_000.0


def _payload(token: bytes) -> dict:
    body = token.split(b".")[1]
    return json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))


def test_a_message_for_every_instance_is_written_as_before_targeting():
    assert list(_payload(sign(KEY, "echo", "freeze", now=NOW))) == [
        "service", "command", "args", "source", "iat", "exp", "nonce"]
    targeted = sign(KEY, "echo", "freeze", now=NOW, instance="h:12")
    assert _payload(targeted)["instance"] == "h:12"
    assert Verifier(KEY, "echo").verify(targeted, now=NOW).instance == "h:12"


def _msg(cmd="freeze", *args, instance=None):
    return ControlMessage(service="echo", command=cmd, args=list(args), iat=0, exp=1, nonce="n", instance=instance)


def test_addressed():
    assert instance_id("h", 12) == "h:12"
    assert addressed(_msg(), "h:12") and addressed(_msg(), "h:12", "h:10")
    assert addressed(_msg(instance="h:12"), "h:12", "h:10")
    assert addressed(_msg(instance="h:10"), "h:12", "h:10")        # the child's supervisor: its whole worker
    assert not addressed(_msg(instance="h:13"), "h:12", "h:10")
    assert not addressed(_msg(instance="g:12"), "h:12")
    assert not addressed(_msg(instance="h:12"), "h:10")            # a supervisor is not its child


class _Child:
    async def set_frozen(self, frozen):
        return "frozen"


async def test_a_supervisor_command_sent_to_one_child_names_the_supervisor():
    sup = _msg("set-processes", "2", instance="h:10")
    assert await apply_in_child(_Child(), sup, supervised=True, group="h:10") is None   # the supervisor answers
    with pytest.raises(ControlError, match="applied by the supervisor: address h:10"):
        await apply_in_child(_Child(), _msg("set-processes", "2", instance="h:12"), supervised=True, group="h:10")
    assert await apply_in_child(_Child(), _msg(instance="h:12"), supervised=True, group="h:10") == "frozen"


@pytest.mark.parametrize("payload, now, reason", [
    (sign(control_key("other"), "echo", "freeze", now=NOW), NOW, "bad signature"),
    (b"not a jws", NOW, "bad signature"),
    (sign(KEY, "jobs", "freeze", now=NOW), NOW, "wrong service"),
    (sign(KEY, "echo", "freeze", now=NOW, validity=30), NOW + 31, "stale (expired)"),
    (sign(KEY, "echo", "freeze", now=NOW + 60), NOW, "stale (issued in the future)"),
    (sign(KEY, "echo", "freeze", now=NOW, validity=3600), NOW, "malformed"),
])
def test_refusal_reasons(payload, now, reason):
    with pytest.raises(ControlRefused) as caught:
        Verifier(KEY, "echo").verify(payload, now=now)
    assert caught.value.reason == reason and str(caught.value).startswith(reason)


def test_a_replay_is_refused_as_replayed():
    v = Verifier(KEY, "echo")
    payload = sign(KEY, "echo", "freeze", now=NOW)
    v.verify(payload, now=NOW)
    with pytest.raises(ControlRefused) as caught:
        v.verify(payload, now=NOW)
    assert caught.value.reason == "replayed"


async def _control(t, payload, expect=None, timeout=1.0):
    return [msgspec.json.decode(r) for r in await t.broadcast_control("echo", payload, timeout=timeout, expect=expect)]


async def test_the_refused_reply_says_why_and_nothing_else():
    t = LocalTransport()
    async with trio.open_nursery() as n:
        await n.start(lambda task_status: serve_service(load_service("echo"), Settings(), t,
                                                        control_secret="k1", task_status=task_status))
        forged = await _control(t, sign(control_key("not-k1"), "echo", "status"), expect=1)
        assert forged == [{"ok": False, "pid": os.getpid(), "host": HOST, "detail": "refused: bad signature"}]
        payload = sign(KEY, "echo", "status")
        first = await _control(t, payload, expect=1)
        assert first[0]["ok"] and first[0]["status"]["service"] == "echo"
        assert (await _control(t, payload, expect=1))[0]["detail"] == "refused: replayed"
        # addressed to another instance: silence; to this one: the answer
        assert await _control(t, sign(KEY, "echo", "status", instance="elsewhere:1"), timeout=0.3) == []
        me = instance_id(HOST, os.getpid())
        assert [r["ok"] for r in await _control(t, sign(KEY, "echo", "status", instance=me), expect=1)] == [True]
        n.cancel_scope.cancel()
