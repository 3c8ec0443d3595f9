"""RPC over direct reply-to: requests carry ``reply_to=amq.rabbitmq.reply-to`` and a
``correlation_id``; the replies come back on the same channel and are matched by id.

The hot path avoids per-call events and tasks: a waiting call is a parked task that the reader
task reschedules with the reply (``trio.lowlevel.wait_task_rescheduled``).
"""

from __future__ import annotations

import itertools
import os
from typing import TYPE_CHECKING

import msgspec
import outcome
import trio

from ._errors import ConnectionLost, RpcTimeout, Unroutable
from ._message import EMPTY_PROPERTIES, Delivery, Properties, Returned

if TYPE_CHECKING:
    from ._channel import Channel
    from ._connection import Connection

__all__ = ["RpcClient", "REPLY_TO"]

REPLY_TO = "amq.rabbitmq.reply-to"
_prefixes = itertools.count(1)


class RpcClient:
    """Calls over one channel of ``connection``. Create with :meth:`open`."""

    def __init__(self, channel: "Channel") -> None:
        self.channel = channel
        self._waiting: dict[str, trio.lowlevel.Task] = {}
        self._ids = itertools.count(1)
        # unique per client, so a late reply of an earlier client never matches
        self._prefix = f"{os.getpid():x}.{next(_prefixes)}."

    @classmethod
    async def open(cls, connection: "Connection") -> "RpcClient":
        channel = await connection.channel()
        client = cls(channel)
        channel.on_return = client._on_return
        channel._gone_hooks.append(client._on_channel_gone)
        # replies go straight to the waiting call, not through a consumer buffer
        await channel._consume(REPLY_TO, no_ack=True, sink=client._on_reply)
        return client

    async def call(self, routing_key: str, body: bytes, *, exchange: str = "",
                   properties: Properties = EMPTY_PROPERTIES, timeout: float = 30.0,
                   mandatory: bool = True) -> Delivery:
        """Publish a request and wait for its reply (a :class:`Delivery`, no ack needed).

        Raises :class:`RpcTimeout` after ``timeout`` seconds, :class:`Unroutable` at once if
        no queue takes the request (``mandatory``), :class:`ConnectionLost` if the connection
        drops while waiting (the request may or may not have been processed).
        """
        cid = self._prefix + str(next(self._ids))
        properties = msgspec.structs.replace(properties, correlation_id=cid, reply_to=REPLY_TO)
        with trio.move_on_after(timeout) as scope:
            await self.channel.publish(body, exchange=exchange, routing_key=routing_key,
                                       properties=properties, mandatory=mandatory)
            # publish did not yield after sending, so the reply cannot have come yet
            self._waiting[cid] = trio.lowlevel.current_task()

            def abort(_: object) -> trio.lowlevel.Abort:
                self._waiting.pop(cid, None)
                return trio.lowlevel.Abort.SUCCEEDED

            return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]
        assert scope.cancelled_caught
        raise RpcTimeout(f"no reply to {routing_key!r} within {timeout} s")

    async def aclose(self) -> None:
        await self.channel.close()

    # -- from the reader task ----------------------------------------------------------------

    def _resolve(self, cid: str | None, result: outcome.Outcome) -> None:
        if cid is None:
            return
        task = self._waiting.pop(cid, None)
        if task is not None:  # else: a late reply of a call that timed out
            trio.lowlevel.reschedule(task, result)

    def _on_reply(self, delivery: Delivery) -> None:
        self._resolve(delivery.properties.correlation_id, outcome.Value(delivery))

    def _on_return(self, message: Returned) -> None:
        self._resolve(message.properties.correlation_id, outcome.Error(Unroutable(
            message.reply_code, message.reply_text, message.exchange, message.routing_key)))

    def _on_channel_gone(self, error: BaseException, fatal: bool) -> None:
        self._fail_all(error if fatal else ConnectionLost(str(error)))

    def _fail_all(self, error: BaseException) -> None:
        waiting, self._waiting = self._waiting, {}
        for task in waiting.values():
            trio.lowlevel.reschedule(task, outcome.Error(error))
