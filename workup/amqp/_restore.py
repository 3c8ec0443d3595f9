"""After a reconnect: re-open the channels, declare the recorded topology again, and
re-register the consumers, before the connection counts as up."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio
from pamqp import commands as C

from ._channel import Channel
from ._core._channel import ChannelState
from ._core._errors import ChannelClosed

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["restore"]

log = logging.getLogger("workup.amqp")
_CHANNEL_CLOSE = C.Channel.Close(200, "topology restored", 0, 0)


async def restore(conn: "Connection", timeout: float = 30.0) -> None:
    with trio.fail_after(timeout):
        channels = sorted(conn._channels.values(), key=lambda c: c.number)
        for channel in channels:
            await channel._open()
        await _replay_topology(conn)
        for channel in channels:
            await channel._restore_consumers()


async def _replay_topology(conn: "Connection") -> None:
    """Declare again what was declared, on a channel of its own (a step the broker now
    refuses closes only that channel: it is logged and the replay goes on)."""
    core = conn._require_core()
    number = next(n for n in range(1, core.channel_max + 1)
                  if n not in conn._channels and core.channel_free(n))
    replay = Channel(conn, number, confirms=False)  # not registered: invisible to users
    for kind in ("exchange", "queue", "bind"):
        for _, key, kw in conn._topology.steps(kind):
            try:
                if replay._core is None or replay._core.state is not ChannelState.OPEN:
                    await replay._open()
                assert replay._core is not None
                reply = await replay._sync(replay._core, _declare_method(kind, key, kw))
            except ChannelClosed as exc:
                replay._core = None
                log.error("could not restore %s %r after reconnect: %s", kind, key, exc)
                continue
            if kind == "queue" and kw["queue"] == "":  # server-named: it has a new name
                _rename_queue(conn, key, reply.queue)
    if replay._core is not None and replay._core.state is ChannelState.OPEN:
        await replay._sync(replay._core, _CHANNEL_CLOSE)


def _rename_queue(conn: "Connection", old: str, new: str) -> None:
    conn._topology.rename_queue(old, new)
    for channel in conn._channels.values():
        for consumer in channel._consumers.values():
            if consumer.queue == old:
                consumer.queue = new


def _declare_method(kind: str, key: Any, kw: dict[str, Any]) -> Any:
    if kind == "exchange":
        return C.Exchange.Declare(exchange=key, exchange_type=kw["type"], durable=kw["durable"],
                                  auto_delete=kw["auto_delete"], internal=kw["internal"],
                                  arguments=kw["arguments"])
    if kind == "queue":
        return C.Queue.Declare(queue=kw["queue"], durable=kw["durable"],
                               exclusive=kw["exclusive"], auto_delete=kw["auto_delete"],
                               arguments=kw["arguments"])
    queue, exchange, routing_key = key
    return C.Queue.Bind(queue=queue, exchange=exchange, routing_key=routing_key,
                        arguments=kw["arguments"])
