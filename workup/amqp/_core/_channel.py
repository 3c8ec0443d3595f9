"""One channel's state machine, without I/O: sync-method bookkeeping, content assembly,
publisher-confirm bookkeeping and ack coalescing.

Rules kept here (AMQP 0-9-1 §2.3, §4.2.6 and RabbitMQ's confirm extension):
- synchronous replies arrive in request order, so pending requests form a FIFO;
- a content-bearing method (deliver/return) is followed by one header and body frames
  adding up to the header's body size, with no other frame of that channel in between;
- after we send ``channel.close`` everything but ``close``/``close-ok`` is dropped;
- in confirm mode the broker numbers our publishes 1, 2, 3... and acks them (possibly
  ``multiple``); a returned ``mandatory`` message comes before its ack;
- consecutive acks of deliveries go out as one ``basic.ack multiple=1``.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Any

from pamqp import commands as C

from ._errors import ProtocolError
from ._events import (ChannelClosedByBroker, ConsumerCancelledByBroker, Delivered, Event,
                      RequestsAbandoned,
                      MessageReturned, MethodReply, PublishConfirmed)
from ._frames import BODY, HEADER, METHOD, Method, encode_ack, encode_method, encode_publish
from ._message import ACK, NACK, Properties, RawDelivery, Returned

__all__ = ["ChannelCore", "ChannelState"]


class ChannelState(enum.Enum):
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


_MISSING = object()


class ChannelCore:
    def __init__(self, number: int, out: list[bytes], frame_max: int,
                 delivery_type: type[RawDelivery] = RawDelivery) -> None:
        self.number = number
        self._delivery_type = delivery_type  # what the frame reader builds for basic.deliver
        self.state = ChannelState.OPENING
        self._out = out
        self._frame_max = frame_max
        # FIFO of (expected reply method names, token) for synchronous requests
        self._waiting: deque[tuple[tuple[str, ...], Any]] = deque()
        # content being assembled: the deliver/return method, bytes still to come, parts
        self._content: RawDelivery | Returned | None = None
        self._remaining = 0
        self._parts: list[bytes] = []
        # publisher confirms: seq -> identity of a mandatory publish (or None)
        self.confirm_mode = False
        self._next_seq = 1
        self._low = 1
        self._pending: dict[int, tuple[str, str, str | None, str | None] | None] = {}
        # consumers we started: tag -> no_ack
        self.consumers: dict[str, bool] = {}
        # delivery tags to acknowledge, in arrival order; acks queued; tags settled otherwise
        self._unsettled: deque[int] = deque()
        self._to_ack: set[int] = set()
        self._done: set[int] = set()
        self.acks_pending = False

    # -- requests ----------------------------------------------------------------------------

    def open(self, token: Any) -> None:
        self.send(C.Channel.Open(), token)

    def send(self, method: Method, token: Any = None) -> None:
        """Queue a method; a synchronous one (not ``nowait``) will answer with ``token``."""
        if self.state is ChannelState.CLOSED or (
                self.state is ChannelState.CLOSING and not isinstance(method, C.Channel.CloseOk)):
            raise ProtocolError(f"channel {self.number} is {self.state.value}", 504)
        if isinstance(method, C.Channel.Close):
            self.state = ChannelState.CLOSING
        elif isinstance(method, C.Confirm.Select):
            self.confirm_mode = True
        elif isinstance(method, C.Basic.Consume):
            self.consumers[method.consumer_tag] = method.no_ack
        if method.synchronous and not getattr(method, "nowait", False):
            self._waiting.append((tuple(method.valid_responses), token))
        self._out.append(encode_method(self.number, method))

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: Properties,
                mandatory: bool = False) -> int | None:
        """Queue a publish; in confirm mode return its sequence number."""
        if self.state is not ChannelState.OPEN:
            raise ProtocolError(f"channel {self.number} is {self.state.value}", 504)
        self._out.append(encode_publish(self.number, exchange, routing_key, body, properties,
                                        mandatory, self._frame_max))
        if not self.confirm_mode:
            return None
        seq = self._next_seq
        self._next_seq = seq + 1
        self._pending[seq] = ((exchange, routing_key, properties.correlation_id,
                               properties.message_id) if mandatory else None)
        return seq

    def settle(self, delivery_tag: int, kind: int, requeue: bool) -> None:
        """Ack (coalesced, written by :meth:`flush_acks`), nack or reject a delivery."""
        if self.state is not ChannelState.OPEN:
            return  # the broker requeues it when the channel closes
        if kind == ACK:
            self._to_ack.add(delivery_tag)
            self.acks_pending = True
            return
        self._done.add(delivery_tag)
        method: Method = (C.Basic.Nack(delivery_tag, False, requeue) if kind == NACK
                          else C.Basic.Reject(delivery_tag, requeue))
        self._out.append(encode_method(self.number, method))

    def flush_acks(self) -> None:
        self.acks_pending = False
        unsettled, to_ack, done = self._unsettled, self._to_ack, self._done
        upto = 0
        while unsettled:
            tag = unsettled[0]
            if tag in to_ack:
                to_ack.discard(tag)
                upto = tag
            elif tag in done:
                done.discard(tag)
            else:
                break
            unsettled.popleft()
        if upto:
            self._out.append(encode_ack(self.number, upto, True))
        for tag in to_ack:  # acked out of order: one by one
            self._out.append(encode_ack(self.number, tag, False))
            done.add(tag)
        to_ack.clear()

    @property
    def queued_frames(self) -> int:
        """Frames queued on the connection (all channels) and not yet sent."""
        return len(self._out)

    def unconfirmed(self) -> list[int]:
        return sorted(self._pending)

    # -- received frames ---------------------------------------------------------------------

    def receive(self, ftype: int, value: Any, events: list[Event]) -> None:
        if self._content is not None:
            self._receive_content(ftype, value, events)
        elif ftype == METHOD:
            self._receive_method(value, events)
        else:
            raise ProtocolError(f"content frame without a method on channel {self.number}", 505)

    def _receive_content(self, ftype: int, value: Any, events: list[Event]) -> None:
        content = self._content
        assert content is not None
        if ftype == HEADER and self._remaining < 0:
            body_size, content.properties = value
            self._remaining = body_size
        elif ftype == BODY and self._remaining >= 0:
            self._parts.append(value)
            self._remaining -= len(value)
            if self._remaining < 0:
                raise ProtocolError("message body longer than its header says", 505)
        else:
            raise ProtocolError(f"unexpected frame type {ftype} inside a message on channel "
                                f"{self.number}", 505)
        if self._remaining == 0:
            parts = self._parts
            content.body = parts[0] if len(parts) == 1 else b"".join(parts)
            self._content, self._parts = None, []
            if self.state is ChannelState.CLOSING:
                return
            if isinstance(content, RawDelivery):  # of the reader's delivery_type
                if not self.consumers.get(content.consumer_tag, False):
                    self._unsettled.append(content.delivery_tag)
                events.append(Delivered(self.number, content))
            else:
                assert type(content) is Returned
                events.append(MessageReturned(self.number, content,
                                              self._match_return(content)))

    def _receive_method(self, method: Any, events: list[Event]) -> None:
        if type(method) is self._delivery_type:
            self._start_content(method)
            return
        if self.state is ChannelState.CLOSING and not isinstance(
                method, (C.Channel.Close, C.Channel.CloseOk)):
            # dropped, as the spec says; but a reply to a request sent before our close still
            # answers (and unblocks) that request, so the FIFO stays aligned for the CloseOk
            if self._waiting and method.name in self._waiting[0][0]:
                self._receive_reply(method, events)
            return
        if isinstance(method, C.Basic.Return):
            self._start_content(Returned(method.reply_code or 0, method.reply_text or "",
                                         method.exchange or "", method.routing_key or ""))
        elif isinstance(method, (C.Basic.Ack, C.Basic.Nack)):
            events.append(PublishConfirmed(self.number, self._confirm(method.delivery_tag,
                                                                      method.multiple),
                                           isinstance(method, C.Basic.Ack)))
        elif isinstance(method, C.Channel.Close):
            events.append(self._closed_by_broker(method))
        elif isinstance(method, C.Basic.Cancel):  # consumer_cancel_notify
            tag = method.consumer_tag or ""
            self.consumers.pop(tag, None)
            events.append(ConsumerCancelledByBroker(self.number, tag))
        elif isinstance(method, C.Channel.Flow):
            self._out.append(encode_method(self.number, C.Channel.FlowOk(method.active)))
        else:
            self._receive_reply(method, events)

    def _receive_reply(self, method: Any, events: list[Event]) -> None:
        if not self._waiting:
            raise ProtocolError(f"unexpected {method.name} on channel {self.number}", 505)
        if self.state is ChannelState.CLOSING and isinstance(method, C.Channel.CloseOk):
            abandoned = []
            while self._waiting and method.name not in self._waiting[0][0]:
                abandoned.append(self._waiting.popleft()[1])
            if abandoned:
                events.append(RequestsAbandoned(self.number, abandoned))
            if not self._waiting:
                raise ProtocolError(f"unexpected {method.name} on channel {self.number}", 505)
        expected, token = self._waiting.popleft()
        if method.name not in expected:
            raise ProtocolError(f"got {method.name} on channel {self.number}, expected "
                                f"{' or '.join(expected)}", 505)
        if isinstance(method, C.Channel.OpenOk):
            self.state = ChannelState.OPEN
        elif isinstance(method, C.Channel.CloseOk):
            self._finish()
        elif isinstance(method, C.Basic.CancelOk):
            self.consumers.pop(method.consumer_tag or "", None)
        events.append(MethodReply(self.number, method, token))

    def _start_content(self, content: RawDelivery | Returned) -> None:
        self._content = content
        self._remaining = -1  # header not seen yet
        self._parts = []

    def _closed_by_broker(self, method: C.Channel.Close) -> ChannelClosedByBroker:
        event = ChannelClosedByBroker(self.number, method.reply_code or 0, method.reply_text or "",
                                      method.class_id or 0, method.method_id or 0,
                                      [token for _, token in self._waiting], self.unconfirmed())
        self._out.append(encode_method(self.number, C.Channel.CloseOk()))
        self._finish()
        return event

    def _finish(self) -> None:
        self.state = ChannelState.CLOSED
        self._waiting.clear()
        self._pending.clear()
        self.consumers.clear()
        self._unsettled.clear()
        self._to_ack.clear()
        self._done.clear()

    def pending_tokens(self) -> list[Any]:
        return [token for _, token in self._waiting]

    # -- confirms ----------------------------------------------------------------------------

    def _confirm(self, tag: int, multiple: bool) -> list[int]:
        pending = self._pending
        if not multiple:
            return [] if pending.pop(tag, _MISSING) is _MISSING else [tag]
        seqs = [seq for seq in range(self._low, tag + 1) if seq in pending]
        for seq in seqs:
            del pending[seq]
        self._low = max(self._low, tag + 1)
        return seqs

    def _match_return(self, message: Returned) -> int | None:
        """The earliest unconfirmed mandatory publish this returned message is a copy of."""
        key = (message.exchange, message.routing_key, message.properties.correlation_id,
               message.properties.message_id)
        for seq, identity in self._pending.items():
            if identity == key:
                del self._pending[seq]
                return seq
        return None
