"""The application's :class:`Delivery`: the core's plain :class:`RawDelivery` plus the shell
state that lets it settle itself (the channel that received it, and on which connection)."""

from __future__ import annotations

from typing import Protocol

from ._core._message import ACK, NACK, REJECT, RawDelivery

__all__ = ["Delivery"]


class _Settles(Protocol):
    """What a delivery calls to acknowledge itself (the channel that received it)."""

    def _settle(self, delivery: "Delivery", kind: int, requeue: bool) -> None: ...


class Delivery(RawDelivery):
    """A message delivered to a consumer. ``ack``/``nack``/``reject`` never block (they are
    queued and written with the next batch; consecutive acks become one ``multiple`` ack).

    The core builds these directly (``ConnectionCore(delivery_type=Delivery)``), so the shell
    adds its state without a copy; the reader task sets ``_settler`` and ``_generation``.
    """

    __slots__ = ("_settler", "_generation", "settled")

    def __init__(self, consumer_tag: str, delivery_tag: int, redelivered: bool, exchange: str,
                 routing_key: str) -> None:
        super().__init__(consumer_tag, delivery_tag, redelivered, exchange, routing_key)
        self._settler: _Settles | None = None
        self._generation = 0  # the connection's session it arrived on
        self.settled = False

    def ack(self) -> None:
        self._settle(ACK, False)

    def nack(self, requeue: bool = True) -> None:
        self._settle(NACK, requeue)

    def reject(self, requeue: bool = True) -> None:
        self._settle(REJECT, requeue)

    def _settle(self, kind: int, requeue: bool) -> None:
        if self.settled:
            raise RuntimeError(f"delivery {self.delivery_tag} was already acked/nacked/rejected")
        self.settled = True
        if self._settler is not None:
            self._settler._settle(self, kind, requeue)
