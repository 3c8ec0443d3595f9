"""Pure pieces of the runtime: signing, hot-swap checks, the command table, backoff, replay keys."""

from __future__ import annotations

import base64
import json

import msgspec
import pytest

from workup.runtime import load_service, UnknownService
from workup.runtime.control import ControlMessage, ControlRefused, Verifier, control_key, sign
from workup.runtime.hotswap import HotSwapError, compile_handler
from workup.runtime.registry import CommandTable
from workup.runtime.supervisor import backoff_delay, sticky_key
from workup.services.echo import Burn, Echo

KEY = control_key("k1")
NOW = 1_800_000_000.0


def test_verifier_accepts_a_fresh_signed_message_once():
    v = Verifier(KEY, "echo")
    payload = sign(KEY, "echo", "set-max-threads", ["3"], now=NOW)
    msg = v.verify(payload, now=NOW + 1)
    assert (msg.command, msg.args) == ("set-max-threads", ["3"])
    with pytest.raises(ControlRefused, match="replayed"):
        v.verify(payload, now=NOW + 2)


@pytest.mark.parametrize("payload, now, reason", [
    (sign(control_key("other"), "echo", "freeze", now=NOW), NOW, "bad signature"),
    (sign(KEY, "jobs", "freeze", now=NOW), NOW, "for service 'jobs'"),
    (sign(KEY, "echo", "freeze", now=NOW, validity=30), NOW + 31, "expired"),
    (sign(KEY, "echo", "freeze", now=NOW + 60), NOW, "future"),
    (sign(KEY, "echo", "freeze", now=NOW, validity=3600), NOW, "window too long"),
    (b"not a jws", NOW, "bad signature"),
    (b"\xff\xfe", NOW, "bad signature"),
])
def test_verifier_refuses(payload, now, reason):
    with pytest.raises(ControlRefused, match=reason):
        Verifier(KEY, "echo").verify(payload, now=now)


def test_unsigned_and_alg_none_are_refused():
    body = msgspec.json.encode(ControlMessage(service="echo", command="freeze", iat=NOW, exp=NOW + 10, nonce="n"))
    b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=")  # noqa: E731
    unsigned = b64(json.dumps({"alg": "none"}).encode()) + b"." + b64(body) + b"."
    with pytest.raises(ControlRefused):
        Verifier(KEY, "echo").verify(unsigned, now=NOW)


def test_a_refused_nonce_is_not_remembered():
    v = Verifier(KEY, "echo")
    with pytest.raises(ControlRefused):
        v.verify(sign(KEY, "echo", "freeze", now=NOW), now=NOW + 100)
    assert v._seen == {}


GOOD = "from workup.services.echo import Echo\nasync def handler(ctx, req: Echo):\n    return 1\n"


@pytest.mark.parametrize("source, reason", [
    ("def handler(:", "does not load"),
    ("raise RuntimeError('boom')", "does not load"),
    ("x = 1", "must define"),
    ("def handler(ctx, req): pass", "must define"),
    ("async def handler(req): pass", "exactly"),
    ("async def handler(ctx, req): pass", "must take req"),
    ("from workup.services.echo import Burn\nasync def handler(ctx, req: Burn): pass", "must take req"),
    ("async def handler(ctx, req: 'Nope'): pass", "do not resolve"),
])
def test_hotswap_refuses(source, reason):
    with pytest.raises(HotSwapError, match=reason):
        compile_handler("echo.Echo", source, Echo)


def test_hotswap_and_table_swap():
    table = CommandTable(load_service("echo"))
    old = table.get("echo.Echo")
    handler = compile_handler("echo.Echo", GOOD, Echo)
    new = table.replace("Echo", handler, GOOD.encode())
    assert table.get("echo.Echo") is new and new.handler is handler and old.handler is not handler
    assert new.version == 2 and new.decoder is old.decoder
    assert table.versions()["echo.Echo"].startswith("v2:")
    table.set_enabled("echo.Echo", False)
    assert "echo.Echo" not in table.enabled() and table.get("echo.Echo").version == 2
    with pytest.raises(KeyError):
        table.resolve("Nope")
    assert table.get("echo.Burn").decoder.decode(msgspec.msgpack.encode(Burn(3))) == Burn(3)


def test_backoff_grows_and_caps():
    assert [backoff_delay(n) for n in range(5)] == [0.0, 0.5, 1.0, 2.0, 4.0]
    assert backoff_delay(50) == 30.0


def test_sticky_keys():
    m = lambda cmd, *args: ControlMessage(service="echo", command=cmd, args=list(args), iat=0, exp=1, nonce=cmd + "".join(args))  # noqa: E731
    assert sticky_key("echo", m("freeze")) == sticky_key("echo", m("start"))
    assert sticky_key("echo", m("delete-command", "Echo")) == sticky_key("echo", m("add-command", "echo.Echo"))
    assert sticky_key("echo", m("delete-command", "Echo")) != sticky_key("echo", m("delete-command", "Burn"))
    assert sticky_key("echo", m("update-command", "Echo", "a")) != sticky_key("echo", m("update-command", "Echo", "b"))
    assert sticky_key("echo", m("set-max-threads", "1")) == sticky_key("echo", m("set-max-threads", "9"))


def test_load_service_errors():
    with pytest.raises(UnknownService, match="no service"):
        load_service("nosuchservice")
    with pytest.raises(UnknownService, match="bad service name"):
        load_service("../etc")
