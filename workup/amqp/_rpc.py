"""RPC over direct reply-to: requests carry ``reply_to=amq.rabbitmq.reply-to`` and a
``correlation_id``; the replies come back on the same channel and are matched by id.

The hot path has no per-call event, task or cancel scope: a waiting call is a parked task
(``trio.lowlevel.wait_task_rescheduled``) that the reader task reschedules with its reply,
and one timer task per client fails the calls whose deadline passed (a heap of deadlines;
entries of answered calls are dropped lazily and the heap is rebuilt when mostly dead).
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
from typing import Any

import msgspec
import outcome
import trio

from ._core._errors import ConnectionLost, RpcTimeout, Unroutable
from ._channel import Channel
from ._connection import Connection
from ._core._message import EMPTY_PROPERTIES, Properties, Returned
from ._delivery import Delivery

__all__ = ["RpcClient", "REPLY_TO"]

REPLY_TO = "amq.rabbitmq.reply-to"
_prefixes = itertools.count(1)
# a waiting call: [deadline, correlation id, parked task (None once resolved), routing key,
# timeout]
_Entry = list[Any]


class RpcClient:
    """Calls over one channel of ``connection``. Create with :meth:`open`."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self._waiting: dict[str, _Entry] = {}
        self._deadlines: list[_Entry] = []
        self._next_deadline = math.inf
        self._timer_scope: trio.CancelScope | None = None
        self._stopped = trio.CancelScope()  # ends the timer task
        self._ids = itertools.count(1)
        # unique per client, so a late reply meant for an earlier client never matches
        self._prefix = f"{os.getpid():x}.{next(_prefixes)}."

    @classmethod
    async def open(cls, connection: Connection) -> "RpcClient":
        channel = await connection.channel()
        client = cls(channel)
        channel.on_return = client._on_return
        channel.add_gone_callback(client._on_channel_gone)
        # replies go straight to the waiting call, not through a consumer buffer
        await channel.consume(REPLY_TO, no_ack=True, sink=client._on_reply)
        connection.start_soon(client._timer)
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
        if properties is EMPTY_PROPERTIES:
            properties = Properties(correlation_id=cid, reply_to=REPLY_TO)
        else:
            properties = msgspec.structs.replace(properties, correlation_id=cid,
                                                 reply_to=REPLY_TO)
        deadline = trio.current_time() + timeout
        channel = self.channel
        if not channel.publish_nowait(body, exchange=exchange, routing_key=routing_key,
                                      properties=properties, mandatory=mandatory):
            with trio.move_on_at(deadline):  # not connected: wait for the reconnect
                await channel.publish(body, exchange=exchange, routing_key=routing_key,
                                      properties=properties, mandatory=mandatory)
            if trio.current_time() >= deadline:
                raise RpcTimeout(f"no reply to {routing_key!r} within {timeout} s")
        entry = [deadline, cid, trio.lowlevel.current_task(), routing_key, timeout]
        self._waiting[cid] = entry
        self._add_deadline(entry)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiting.pop(cid, None)
            entry[2] = None
            return trio.lowlevel.Abort.SUCCEEDED

        return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close the client's channel (waiting calls fail) and stop its timer task."""
        self._stopped.cancel()
        await self.channel.close()

    # -- deadlines ---------------------------------------------------------------------------

    def _add_deadline(self, entry: _Entry) -> None:
        heap = self._deadlines
        if len(heap) > 2 * len(self._waiting) + 64:  # mostly answered calls: rebuild
            heap[:] = [e for e in heap if e[2] is not None]
            heapq.heapify(heap)
        heapq.heappush(heap, entry)
        if entry[0] < self._next_deadline:
            self._next_deadline = entry[0]
            if self._timer_scope is not None:
                self._timer_scope.deadline = entry[0]

    async def _timer(self) -> None:
        with self._stopped:
            await self._expire_calls()

    async def _expire_calls(self) -> None:
        heap = self._deadlines
        while True:
            with trio.CancelScope(deadline=self._next_deadline) as scope:
                self._timer_scope = scope
                await trio.sleep_forever()
            self._timer_scope = None
            now = trio.current_time()
            while heap and (heap[0][2] is None or heap[0][0] <= now):
                entry = heapq.heappop(heap)
                task = entry[2]
                if task is not None:
                    entry[2] = None
                    self._waiting.pop(entry[1], None)
                    trio.lowlevel.reschedule(task, outcome.Error(RpcTimeout(
                        f"no reply to {entry[3]!r} within {entry[4]} s")))
            self._next_deadline = heap[0][0] if heap else math.inf

    # -- from the reader task ----------------------------------------------------------------

    def _resolve(self, cid: str | None, result: outcome.Outcome[Delivery]) -> None:
        entry = self._waiting.pop(cid, None) if cid is not None else None
        if entry is not None:  # else: a late reply of a call that timed out
            task = entry[2]
            entry[2] = None
            trio.lowlevel.reschedule(task, result)

    def _on_reply(self, delivery: Delivery) -> None:
        self._resolve(delivery.properties.correlation_id, outcome.Value(delivery))

    def _on_return(self, message: Returned) -> None:
        self._resolve(message.properties.correlation_id, outcome.Error(Unroutable(
            message.reply_code, message.reply_text, message.exchange, message.routing_key)))

    def _on_channel_gone(self, error: BaseException, fatal: bool) -> None:
        error = error if fatal else ConnectionLost(str(error))
        waiting, self._waiting = self._waiting, {}
        for entry in waiting.values():
            task, entry[2] = entry[2], None
            trio.lowlevel.reschedule(task, outcome.Error(error))
