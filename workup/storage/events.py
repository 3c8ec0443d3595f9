"""Notification events that a process dying between a state change and its publish cannot lose.

An emit site writes the event as an ``event`` intent in the service's outbox *before* its
conditional write; after the write applied it publishes the event and drops the intent, and when
the write did not apply it drops the intent unpublished. An intent left behind (the process died,
or the broker was away) is finished by the service's relay: published when the store shows the
change happened (the entity named in ``check`` is in one of its ``statuses``), dropped otherwise.
So every applied change is announced at least once; twice only if a process died after
publishing and before dropping.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Awaitable, Callable, Sequence

import msgspec

from ..ids import now_ms, rfc3339
from .outbox import Outbox

__all__ = ["EVENT", "EventCheck", "EventIntent", "intend", "publish", "drop", "relay_events"]

EVENT = "event"
_log = logging.getLogger("workup.runtime")


class EventCheck(msgspec.Struct, frozen=True):
    """How the relay tells whether the change behind an event happened: ``entity`` (a kind the
    service knows, e.g. "milestone") with id ``id`` is now in one of ``statuses``."""
    entity: str
    id: str
    statuses: tuple[str, ...]


class EventIntent(msgspec.Struct, frozen=True):
    id: str
    type: str
    at: str
    recipients: list[str]
    data: dict[str, str]
    check: EventCheck


_encode = msgspec.json.Encoder()
_decode = msgspec.json.Decoder(EventIntent)


def _item(intent: EventIntent) -> str:
    return _encode.encode(intent).decode()


async def intend(outbox: Outbox, type: str, recipients: Sequence[str], data: dict[str, str],
                 check: EventCheck) -> EventIntent:
    """Record the event before the write that makes it true."""
    intent = EventIntent(id=uuid.uuid4().hex, type=type, at=rfc3339(now_ms()), recipients=list(recipients),
                         data=dict(data), check=check)
    await outbox.add(EVENT, _item(intent), now_ms())
    return intent


async def publish(rt: Any, outbox: Outbox, intent: EventIntent) -> bool:
    """After the write applied: announce it, then forget the intent. A publish that fails (the
    broker is away) is logged and left to the relay: the change itself succeeded."""
    try:
        await rt.emit(intent.type, intent.recipients, intent.data, at=intent.at)
    except Exception as exc:
        _log.warning("event %s not published yet (%s); the relay retries", intent.type, exc)
        return False
    await outbox.done(EVENT, _item(intent))
    return True


async def drop(outbox: Outbox, intent: EventIntent) -> None:
    """The write did not apply: nothing to announce."""
    await outbox.done(EVENT, _item(intent))


Status = Callable[[str, str], Awaitable[str | None]]   # (entity, id) -> its status now, None if absent


async def relay_events(rt: Any, outbox: Outbox, status_of: Status, grace_ms: int,
                       log: logging.Logger) -> int:
    """Finish the intents older than ``grace_ms`` (younger ones belong to live handlers);
    returns how many were published."""
    published = 0
    for item, created_ms in await outbox.pending(EVENT):
        if now_ms() - created_ms < grace_ms:
            continue
        try:
            intent = _decode.decode(item)
        except msgspec.MsgspecError:
            log.error("dropping an undecodable event intent: %.200s", item)
            await outbox.done(EVENT, item)
            continue
        if await status_of(intent.check.entity, intent.check.id) in intent.check.statuses:
            published += await publish(rt, outbox, intent)
        else:
            await drop(outbox, intent)
    return published
