"""Broadcast one signed control message to every instance of a service (or to one of them:
``instance``) and collect replies."""

from __future__ import annotations

from typing import Protocol, Sequence

import msgspec

from ..runtime.control import ControlReply, control_key, sign

__all__ = ["ControlBus", "broadcast"]


class ControlBus(Protocol):
    """The controller's side of a transport (``LocalTransport``, ``AmqpTransport``)."""

    async def broadcast_control(self, service: str, payload: bytes, *, timeout: float,
                                expect: int | None = None) -> list[bytes]: ...


_decode_reply = msgspec.json.Decoder(ControlReply).decode


async def broadcast(transport: ControlBus, service: str, secret: str, command: str, args: Sequence[str] = (),
                    *, source: str | None = None, timeout: float = 2.0, expect: int | None = None,
                    validity: float = 30.0, instance: str | None = None) -> list[ControlReply]:
    """The replies within ``timeout``; with ``instance`` (``host:pid``) only that process, or that
    supervisor and its children, act and answer (and any instance that refuses the message)."""
    payload = sign(control_key(secret), service, command, list(args), source=source, validity=validity,
                   instance=instance)
    raw = await transport.broadcast_control(service, payload, timeout=timeout, expect=expect)
    replies = []
    for item in raw:
        try:
            replies.append(_decode_reply(item))
        except msgspec.MsgspecError:
            continue  # not an instance of ours
    return replies
