"""A consumer: an async iterator of :class:`Delivery` fed by the connection's reader task.

Any number of tasks may wait on one consumer at once (a service's pool of worker loops does):
a delivery that finds a task waiting goes straight to it (``trio.lowlevel.reschedule``, the
RPC client's way), so it costs one task switch, with no event or hand-over between the waiters;
one that finds none is buffered for the next ``__anext__``.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Protocol

import outcome
import trio

from ._core._errors import AMQPError
from ._delivery import Delivery

__all__ = ["Consumer"]


class _Cancels(Protocol):
    """What a consumer needs from its channel (a protocol rather than an import keeps
    ``_channel`` -> ``_consumer`` one-way)."""

    async def _cancel(self, consumer: "Consumer") -> None: ...


class Consumer:
    """``async for delivery in consumer`` until :meth:`cancel` (or the ``async with`` block
    ends). Survives reconnects: deliveries not yet handed out when the connection drops are
    dropped (the broker redelivers them), and the consumer is re-registered on the new
    connection. Ends with :class:`ConsumerCancelled`/:class:`ChannelClosed`/
    :class:`ConnectionClosed` when the broker or the connection ends it.
    """

    def __init__(self, channel: _Cancels, queue: str, tag: str, no_ack: bool,
                 exclusive: bool, arguments: dict[str, Any] | None) -> None:
        self.channel = channel
        self.queue = queue
        self.consumer_tag = tag
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.arguments = arguments
        self._buffer: deque[Delivery] = deque()
        self._waiters: deque[trio.lowlevel.Task] = deque()   # parked in __anext__, first come first
        self._error: BaseException | None = None
        self._cancelled = False
        # where the reader task puts deliveries
        self._sink: Callable[[Delivery], None] = self._deliver

    # -- fed by the reader task --------------------------------------------------------------

    def _deliver(self, delivery: Delivery) -> None:
        if self._waiters:
            trio.lowlevel.reschedule(self._waiters.popleft(), outcome.Value(delivery))
        else:
            self._buffer.append(delivery)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        waiters, self._waiters = self._waiters, deque()
        for task in waiters:  # each raises it (or ends its iteration) as __anext__ would
            trio.lowlevel.reschedule(task, outcome.Error(error))

    def _finish(self) -> None:
        self._cancelled = True
        self._fail(StopAsyncIteration())

    def _drop_buffered(self) -> None:
        self._buffer.clear()

    # -- used by the application -------------------------------------------------------------

    def __aiter__(self) -> "Consumer":
        return self

    async def __anext__(self) -> Delivery:
        if self._buffer:
            # no schedule point while deliveries are queued: the replies and acks of one
            # received batch then leave in one write
            await trio.lowlevel.checkpoint_if_cancelled()
            return self._buffer.popleft()
        if self._error is not None:
            if self._cancelled:
                raise StopAsyncIteration
            raise self._error
        task = trio.lowlevel.current_task()
        self._waiters.append(task)

        def abort(_: object) -> trio.lowlevel.Abort:
            self._waiters.remove(task)   # not handed anything yet: nothing is lost
            return trio.lowlevel.Abort.SUCCEEDED

        try:
            return await trio.lowlevel.wait_task_rescheduled(abort)  # type: ignore[no-any-return]
        except StopAsyncIteration:
            raise
        except BaseException as exc:
            if exc is self._error and self._cancelled:
                raise StopAsyncIteration from None
            raise

    @property
    def ended(self) -> bool:
        """Cancelled (or failed) with nothing left buffered: iteration has ended or will raise."""
        return self._error is not None and not self._buffer

    def receive_nowait(self) -> Delivery | None:
        """A buffered delivery, or ``None``."""
        return self._buffer.popleft() if self._buffer else None

    async def cancel(self) -> None:
        """``basic.cancel``. Deliveries that arrived before the broker's ``cancel-ok`` are still
        handed out (by iteration or :meth:`receive_nowait`): ack or nack them."""
        if self._cancelled:
            return
        self._cancelled = True
        try:
            await self.channel._cancel(self)
        except AMQPError:
            pass  # the channel or connection is gone: so is the consumer
        finally:
            self._finish()

    async def __aenter__(self) -> "Consumer":
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Cancel, and requeue what was received but never handed out (nobody will now)."""
        with trio.CancelScope(shield=True):
            with trio.move_on_after(5):
                await self.cancel()
        buffered, self._buffer = self._buffer, deque()
        if not self.no_ack:
            for delivery in buffered:
                delivery.nack(requeue=True)
