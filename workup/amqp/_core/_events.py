"""What the sans-IO core reports after ``receive_data``: one small class per kind of event."""

from __future__ import annotations

from typing import Any

from ._message import RawDelivery, Returned

__all__ = ["Event", "ConnectionOpened", "ConnectionClosedByBroker", "ConnectionCloseOk",
           "Blocked", "Unblocked", "MethodReply", "ChannelClosedByBroker", "Delivered",
           "MessageReturned", "PublishConfirmed", "ConsumerCancelledByBroker", "RequestsAbandoned"]


def _slots(event: "Event") -> tuple[str, ...]:
    return type(event).__slots__


class Event:
    __slots__ = ()

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in _slots(self))
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and all(
            getattr(self, k) == getattr(other, k) for k in _slots(self))

    __hash__ = None  # type: ignore[assignment]


class ConnectionOpened(Event):
    __slots__ = ("frame_max", "channel_max", "heartbeat", "server_properties")

    def __init__(self, frame_max: int, channel_max: int, heartbeat: int,
                 server_properties: dict[str, Any]) -> None:
        self.frame_max = frame_max
        self.channel_max = channel_max
        self.heartbeat = heartbeat
        self.server_properties = server_properties


class ConnectionClosedByBroker(Event):
    """``connection.close`` from the broker (the core already queued ``close-ok``)."""

    __slots__ = ("reply_code", "reply_text", "class_id", "method_id")

    def __init__(self, reply_code: int, reply_text: str, class_id: int, method_id: int) -> None:
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id


class ConnectionCloseOk(Event):
    """The broker acknowledged our ``connection.close``."""

    __slots__ = ()


class Blocked(Event):
    """The broker stopped reading our publishes (resource alarm)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class Unblocked(Event):
    __slots__ = ()


class MethodReply(Event):
    """The reply to a synchronous method; ``token`` is what the caller passed with the request."""

    __slots__ = ("channel", "method", "token")

    def __init__(self, channel: int, method: Any, token: Any) -> None:
        self.channel = channel
        self.method = method
        self.token = token


class RequestsAbandoned(Event):
    """Our ``channel.close`` was answered before some earlier synchronous requests (RabbitMQ may
    skip e.g. ``consume-ok`` once it has the close): ``tokens`` will never get their reply."""

    __slots__ = ("channel", "tokens")

    def __init__(self, channel: int, tokens: list[Any]) -> None:
        self.channel = channel
        self.tokens = tokens


class ChannelClosedByBroker(Event):
    """``channel.close`` from the broker (``close-ok`` already queued). ``tokens`` are the
    pending synchronous requests, ``unconfirmed`` the publish sequence numbers left open."""

    __slots__ = ("channel", "reply_code", "reply_text", "class_id", "method_id", "tokens",
                 "unconfirmed")

    def __init__(self, channel: int, reply_code: int, reply_text: str, class_id: int,
                 method_id: int, tokens: list[Any], unconfirmed: list[int]) -> None:
        self.channel = channel
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id
        self.tokens = tokens
        self.unconfirmed = unconfirmed


class Delivered(Event):
    __slots__ = ("channel", "delivery")

    def __init__(self, channel: int, delivery: RawDelivery) -> None:
        self.channel = channel
        self.delivery = delivery


class MessageReturned(Event):
    """``basic.return``; ``seq`` is the publish it belongs to on a confirm-mode channel."""

    __slots__ = ("channel", "message", "seq")

    def __init__(self, channel: int, message: Returned, seq: int | None) -> None:
        self.channel = channel
        self.message = message
        self.seq = seq


class PublishConfirmed(Event):
    """``basic.ack``/``basic.nack`` from the broker, resolved to publish sequence numbers."""

    __slots__ = ("channel", "seqs", "ack")

    def __init__(self, channel: int, seqs: list[int], ack: bool) -> None:
        self.channel = channel
        self.seqs = seqs
        self.ack = ack


class ConsumerCancelledByBroker(Event):
    __slots__ = ("channel", "consumer_tag")

    def __init__(self, channel: int, consumer_tag: str) -> None:
        self.channel = channel
        self.consumer_tag = consumer_tag
