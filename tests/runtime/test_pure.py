"""Pure pieces of the runtime: signing and replay refusal, hot-swap checks, the command table, backoff, replay keys,
and the control table (argument checks, who applies what, what the supervisor remembers)."""

from __future__ import annotations

import base64
import json
import logging
import re

import msgspec
import pytest

from workup.runtime import load_service, UnknownService
from workup.runtime.control import (CHILD, CONTROL, SUPERVISOR, ControlCommand, ControlError, ControlMessage,
    ControlRefused, Sticky, Verifier, apply_in_child, apply_in_supervisor, control_key, sign, sticky_key)
from workup.runtime.hotswap import HotSwapError, compile_handler
from workup.runtime.registry import CommandTable
from workup.runtime.supervisor import backoff_delay
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


def test_a_message_issued_before_the_instance_started_is_a_replay():
    payload = sign(KEY, "echo", "freeze", now=NOW, validity=60)
    with pytest.raises(ControlRefused, match="replayed") as exc:
        Verifier(KEY, "echo", not_before=NOW + 10).verify(payload, now=NOW + 11)
    assert "before this instance started" in str(exc.value)
    # within the clock skew allowed for the controller: accepted (a genuine message racing the start)
    assert Verifier(KEY, "echo", not_before=NOW + 4).verify(payload, now=NOW + 5).command == "freeze"
    # an expired one still says so
    with pytest.raises(ControlRefused, match="expired"):
        Verifier(KEY, "echo", not_before=NOW + 100).verify(payload, now=NOW + 100)


def test_a_child_refuses_the_nonces_its_supervisor_saw():
    supervisor = Verifier(KEY, "echo", not_before=NOW)
    old = sign(KEY, "echo", "freeze", now=NOW + 1, validity=5)
    live = sign(KEY, "echo", "set-max-threads", ["3"], now=NOW + 5, validity=30)
    supervisor.verify(old, now=NOW + 1)
    supervisor.verify(live, now=NOW + 5)
    handed = supervisor.remembered(now=NOW + 8)        # what goes to a child started at NOW + 8
    assert list(handed.values()) == [NOW + 35]         # the expired nonce is not handed on
    # issued 3 s before the child started: within the clock skew, so its nonce is what refuses it
    child = Verifier(KEY, "echo", not_before=NOW + 8, seen=handed)
    with pytest.raises(ControlRefused, match="nonce already seen"):
        child.verify(live, now=NOW + 9)
    assert child.verify(sign(KEY, "echo", "start", now=NOW + 9), now=NOW + 9).command == "start"


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


# -- the control table ---------------------------------------------------------------------------
def _msg(cmd, *args, source=None, nonce=None):
    return ControlMessage(service="echo", command=cmd, args=list(args), source=source, iat=0, exp=1,
                          nonce=nonce or cmd + "".join(args))


@pytest.mark.parametrize("command, args, canonical", [
    ("status", [], []),
    ("set-max-threads", ["1"], ["1"]),
    ("set-max-threads", ["10000"], ["10000"]),
    ("set-max-threads", ["007"], ["7"]),
    ("set-max-db-connections", ["1000"], ["1000"]),
    ("freeze", [], []),
    ("start", [], []),
    ("delete-command", ["Echo"], ["Echo"]),
    ("add-command", ["echo.Echo"], ["echo.Echo"]),
    ("update-command", ["Echo"], ["Echo"]),          # the file travels as the source
    ("set-logging-level", ["debug"], ["DEBUG"]),
    ("set-logging-level", ["warn"], ["WARNING"]),
    ("set-logging-level", ["Critical"], ["CRITICAL"]),
    ("set-processes", ["64"], ["64"]),
])
def test_wire_arguments_accepted_and_made_canonical(command, args, canonical):
    assert CONTROL[command].check_wire(args) == canonical


@pytest.mark.parametrize("command, args, reason", [
    ("status", ["x"], "status takes 0 arguments, got 1"),
    ("freeze", ["now"], "freeze takes 0 arguments, got 1"),
    ("start", ["x", "y"], "start takes 0 arguments, got 2"),
    ("set-max-threads", [], "set-max-threads takes 1 argument, got 0"),
    ("set-max-threads", ["1", "2"], "takes 1 argument, got 2"),
    ("set-max-threads", ["0"], "between 1 and 10000, got '0'"),
    ("set-max-threads", ["10001"], "between 1 and 10000"),
    ("set-max-threads", ["-3"], "whole number"),
    ("set-max-threads", ["+3"], "whole number"),
    ("set-max-threads", [" 3"], "whole number"),
    ("set-max-threads", ["\u00b2"], "whole number"),   # isdigit() but not int()
    ("set-max-threads", ["3.0"], "whole number"),
    ("set-max-db-connections", ["1001"], "between 1 and 1000"),
    ("set-max-db-connections", ["lots"], "whole number"),
    ("set-processes", ["65"], "between 1 and 64"),
    ("set-processes", [], "takes 1 argument"),
    ("delete-command", [], "takes 1 argument"),
    ("add-command", ["A", "B"], "takes 1 argument"),
    ("update-command", ["Echo", "x.py"], "update-command takes 1 argument, got 2"),
    ("set-logging-level", ["LOUD"], "log level must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'LOUD'"),
    ("set-logging-level", [], "takes 1 argument"),
])
def test_wire_arguments_refused(command, args, reason):
    with pytest.raises(ControlError, match=re.escape(reason)):
        CONTROL[command].check_wire(args)


def test_the_controller_checks_the_file_argument_the_wire_does_not_carry():
    update = CONTROL["update-command"]
    assert update.check_cli(["Echo", "x.py"]) == ["Echo", "x.py"]
    with pytest.raises(ControlError, match="takes 2 arguments, got 1"):
        update.check_cli(["Echo"])
    with pytest.raises(ControlError, match="update-command needs a .py file, got 'x.txt'"):
        update.check_cli(["Echo", "x.txt"])
    assert [n for n, c in CONTROL.items() if c.names_a_command] == ["delete-command", "add-command",
                                                                     "update-command"]
    for name, command in CONTROL.items():
        if name != "update-command":  # every other command's arguments all travel
            assert all(a.on_wire for a in command.args)


def test_who_applies_what():
    by = {name: c.applied_by for name, c in CONTROL.items()}
    assert by.pop("status") == CHILD | SUPERVISOR
    assert by.pop("set-processes") == SUPERVISOR
    assert set(by.values()) == {CHILD}
    assert [n for n, c in CONTROL.items() if c.sticky is not None] == [
        "set-max-threads", "set-max-db-connections", "freeze", "start", "delete-command", "add-command",
        "update-command", "set-logging-level"]


def test_a_table_entry_must_make_sense():
    with pytest.raises(ValueError, match="applied by nobody"):
        ControlCommand(name="x", summary="x")
    with pytest.raises(ValueError, match="only a child-only command is remembered"):
        ControlCommand(name="x", summary="x", sticky=Sticky("x"), supervisor=CONTROL["set-processes"].supervisor)


def test_sticky_keys_for_every_command():
    keys = {name: sticky_key("echo", _msg(name, *(["1"] if c.args else []))) for name, c in CONTROL.items()}
    assert keys["status"] is None and keys["set-processes"] is None
    assert keys["freeze"] == keys["start"] == ("frozen", "")
    assert keys["set-max-threads"] == ("set-max-threads", "")
    assert keys["set-max-db-connections"] == ("set-max-db-connections", "")
    assert keys["set-logging-level"] == ("set-logging-level", "")
    assert keys["delete-command"] == keys["add-command"] == ("enabled", "echo.1")
    assert keys["update-command"] == ("handler", "echo.1:update-command1")
    assert sticky_key("echo", _msg("bogus")) is None
    assert sticky_key("echo", _msg("add-command", "jobs.CreateJob")) == ("enabled", "jobs.CreateJob")
    assert sticky_key("echo", _msg("add-command")) == ("enabled", "echo.")  # refused later, by the child


class FakeChild:
    """A ChildTarget that records what the appliers asked of it."""

    def __init__(self):
        self.calls = []

    async def set_max_threads(self, n):
        self.calls.append(("threads", n))
        return f"max threads {n}"

    async def set_max_db_connections(self, n):
        self.calls.append(("pool", n))
        return f"db pool {n}"

    async def set_frozen(self, frozen):
        self.calls.append(("frozen", frozen))
        return "frozen" if frozen else "started"

    def set_enabled(self, name, enabled):
        self.calls.append(("enabled", name, enabled))
        return f"{name} {'enabled' if enabled else 'disabled'}"

    def update_handler(self, name, source):
        self.calls.append(("update", name, source))
        return f"{name} now v2"


@pytest.mark.parametrize("msg, call, detail", [
    (_msg("status"), None, "status"),
    (_msg("set-max-threads", "08"), ("threads", 8), "max threads 8"),
    (_msg("set-max-db-connections", "5"), ("pool", 5), "db pool 5"),
    (_msg("freeze"), ("frozen", True), "frozen"),
    (_msg("start"), ("frozen", False), "started"),
    (_msg("delete-command", "Echo"), ("enabled", "Echo", False), "Echo disabled"),
    (_msg("add-command", "Echo"), ("enabled", "Echo", True), "Echo enabled"),
    (_msg("update-command", "Echo", source="src"), ("update", "Echo", "src"), "Echo now v2"),
])
async def test_the_child_applies_from_the_table(msg, call, detail):
    for supervised in (False, True):
        target = FakeChild()
        assert await apply_in_child(target, msg, supervised=supervised) == detail
        assert target.calls == ([] if call is None else [call])


async def test_the_child_sets_the_log_level():
    logger = logging.getLogger("workup")
    before = logger.level
    try:
        assert await apply_in_child(FakeChild(), _msg("set-logging-level", "warn"), supervised=False) == "log level WARNING"
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(before)


async def test_the_child_refuses_or_leaves_what_is_not_its_own():
    target = FakeChild()
    with pytest.raises(ControlError, match="unknown control command 'bogus'"):
        await apply_in_child(target, _msg("bogus"), supervised=True)
    with pytest.raises(ControlError, match="not running under a supervisor"):
        await apply_in_child(target, _msg("set-processes", "2"), supervised=False)
    assert await apply_in_child(target, _msg("set-processes", "2"), supervised=True) is None
    with pytest.raises(ControlError, match="between 1 and 10000"):
        await apply_in_child(target, _msg("set-max-threads", "0"), supervised=True)
    assert target.calls == []


class FakeSupervisor:
    def __init__(self):
        self.processes = []

    async def set_processes(self, n):
        self.processes.append(n)


async def test_the_supervisor_applies_its_own_and_remembers_the_rest():
    target, remembered = FakeSupervisor(), []
    apply = lambda msg: apply_in_supervisor(target, msg, remembered.append)  # noqa: E731
    assert await apply(_msg("set-processes", "3")) == "processes 3"
    assert await apply(_msg("status")) == "status"
    with pytest.raises(ControlError, match="between 1 and 64"):
        await apply(_msg("set-processes", "65"))
    with pytest.raises(ControlError, match="ignored by the supervisor"):
        await apply(_msg("bogus"))
    assert target.processes == [3] and remembered == []
    child_only = [name for name, c in CONTROL.items() if c.applied_by == CHILD]
    for name in child_only:
        assert await apply(_msg(name, "1")) is None  # the children answer it
    assert [m.command for m in remembered] == child_only
