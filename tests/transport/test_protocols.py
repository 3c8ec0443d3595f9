"""Both transports satisfy the protocols of ``workup/transport/__init__.py``, client and server
side: every member exists, async where the protocol's is, and takes the protocol's parameters
by the same names (extra ones only with defaults). ``mypy`` checks the same through the typed
assignments at the bottom."""

from __future__ import annotations

import inspect
from typing import Protocol

import pytest

from workup import transport as t
from workup.transport.local import (ControlDelivery, LocalControlSource, LocalDelivery,
                                    LocalTransport, LocalWorkSource)
from workup.transport.rabbitmq import (AmqpControlSource, AmqpDelivery, AmqpTransport,
                                       AmqpWorkSource, _ControlDelivery)


def protocol_members(protocol: type) -> dict[str, object]:
    """The members a class must have to satisfy ``protocol`` (its own and its bases')."""
    members: dict[str, object] = {}
    for base in reversed(protocol.__mro__):
        if base is object or base is Protocol or not getattr(base, "_is_protocol", False):
            continue
        for name in getattr(base, "__annotations__", {}):
            members[name] = None
        for name, value in vars(base).items():
            if not name.startswith("_"):
                members[name] = value
    return members


def mismatches(cls: type, protocol: type) -> list[str]:
    problems = []
    for name, member in protocol_members(protocol).items():
        if not hasattr(cls, name) and name not in getattr(cls, "__slots__", ()):
            problems.append(f"{name}: missing")
            continue
        if not inspect.isfunction(member):
            continue  # an attribute or a read-only property: presence is the contract
        impl = inspect.unwrap(getattr(cls, name))
        if inspect.iscoroutinefunction(member) != inspect.iscoroutinefunction(impl):
            problems.append(f"{name}: async differs")
        want = inspect.signature(member).parameters
        have = inspect.signature(impl).parameters
        for pname, p in want.items():
            q = have.get(pname)
            if q is None or q.kind != p.kind:
                problems.append(f"{name}: parameter {pname!r} missing or of another kind")
        for pname, q in have.items():
            if pname not in want and q.default is inspect.Parameter.empty \
                    and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD):
                problems.append(f"{name}: extra parameter {pname!r} without a default")
    return problems


@pytest.mark.parametrize(("cls", "protocol"), [
    (LocalTransport, t.Transport), (AmqpTransport, t.Transport),
    (LocalTransport, t.EventSource), (AmqpTransport, t.EventSource),
    (LocalWorkSource, t.WorkSource), (AmqpWorkSource, t.WorkSource),
    (LocalControlSource, t.ControlSource), (AmqpControlSource, t.ControlSource),
    (LocalDelivery, t.Request), (AmqpDelivery, t.Request),
    (ControlDelivery, t.ControlRequest), (_ControlDelivery, t.ControlRequest),
])
def test_implementation_satisfies_protocol(cls: type, protocol: type) -> None:
    assert mismatches(cls, protocol) == []


def test_the_check_sees_a_mismatch() -> None:
    class Half:
        async def receive(self) -> None: ...
        def settle(self, request: object, *, after: object = None) -> None: ...   # not async, no reply
        async def set_prefetch(self, n: int, extra: int) -> None: ...

    assert sorted(mismatches(Half, t.WorkSource)) == [
        "close: missing", "set_prefetch: extra parameter 'extra' without a default",
        "settle: async differs", "settle: parameter 'reply' missing or of another kind"]


def test_transport_combines_both_sides() -> None:
    members = set(protocol_members(t.Transport))
    assert {"call", "publish_event", "consume", "control"} <= members


# checked by mypy, not at run time: the classes are structurally what the runtime takes
_local: type[t.Transport] = LocalTransport
_amqp: type[t.Transport] = AmqpTransport
_local_source: type[t.WorkSource] = LocalWorkSource
_amqp_source: type[t.WorkSource] = AmqpWorkSource
_local_control: type[t.ControlSource] = LocalControlSource
_amqp_control: type[t.ControlSource] = AmqpControlSource
