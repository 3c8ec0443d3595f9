"""A consumer: an async iterator of :class:`Delivery` fed by the connection's reader task."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Protocol

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
        self._wakeup = trio.Event()
        self._error: BaseException | None = None
        self._cancelled = False
        # where the reader task puts deliveries
        self._sink: Callable[[Delivery], None] = self._deliver

    # -- fed by the reader task --------------------------------------------------------------

    def _deliver(self, delivery: Delivery) -> None:
        self._buffer.append(delivery)
        if not self._wakeup.is_set():
            self._wakeup.set()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._wakeup.set()

    def _finish(self) -> None:
        self._cancelled = True
        self._fail(StopAsyncIteration())

    def _drop_buffered(self) -> None:
        self._buffer.clear()

    # -- used by the application -------------------------------------------------------------

    def __aiter__(self) -> "Consumer":
        return self

    async def __anext__(self) -> Delivery:
        while True:
            if self._buffer:
                # no schedule point while deliveries are queued: the replies and acks of one
                # received batch then leave in one write
                await trio.lowlevel.checkpoint_if_cancelled()
                return self._buffer.popleft()
            if self._error is not None:
                if self._cancelled:
                    raise StopAsyncIteration
                raise self._error
            self._wakeup = trio.Event()
            await self._wakeup.wait()

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
