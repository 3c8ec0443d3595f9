"""Broadcast one signed control message to every instance of a service and collect replies."""

from __future__ import annotations

from typing import Any, Sequence

import msgspec

from ..runtime.control import COMMANDS, ControlReply, control_key, sign
from ..runtime.instance import LOG_LEVELS

__all__ = ["ControlUsageError", "check_arguments", "broadcast"]

_decode_reply = msgspec.json.Decoder(ControlReply).decode


class ControlUsageError(ValueError):
    """Bad controller arguments; ``str()`` is a one-line message."""


def check_arguments(command: str, args: Sequence[str]) -> None:
    """Validate before anything is sent, so a typo never reaches the instances."""
    if command not in COMMANDS:
        raise ControlUsageError(
            f"unknown command {command!r}; one of: {', '.join(sorted([*COMMANDS, 'spawn-machine']))}")
    want = COMMANDS[command] + (1 if command == "update-command" else 0)
    if len(args) != want:
        raise ControlUsageError(f"{command} takes {want} argument{'s' if want != 1 else ''}, got {len(args)}")
    if command in ("set-max-threads", "set-max-db-connections", "set-processes"):
        high = {"set-max-threads": 10_000, "set-max-db-connections": 1000, "set-processes": 64}[command]
        if not args[0].isdigit() or not 1 <= int(args[0]) <= high:
            raise ControlUsageError(f"{command} needs a whole number between 1 and {high}, got {args[0]!r}")
    if command == "set-logging-level":
        level = args[0].upper()
        if level not in (*LOG_LEVELS, "WARN"):
            raise ControlUsageError(f"log level must be one of {', '.join(LOG_LEVELS)}, got {args[0]!r}")


async def broadcast(transport: Any, service: str, secret: str, command: str, args: Sequence[str] = (),
                    *, source: str | None = None, timeout: float = 2.0, expect: int | None = None,
                    validity: float = 30.0) -> list[ControlReply]:
    payload = sign(control_key(secret), service, command, list(args), source=source, validity=validity)
    raw = await transport.broadcast_control(service, payload, timeout=timeout, expect=expect)
    replies = []
    for item in raw:
        try:
            replies.append(_decode_reply(item))
        except msgspec.MsgspecError:
            continue  # not an instance of ours
    return replies
