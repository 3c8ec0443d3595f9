"""The exceptions of the AMQP client: one base class, a typed error per way things fail."""

from __future__ import annotations

__all__ = [
    "AMQPError",
    "ProtocolError",
    "ConnectionClosed",
    "ConnectionLost",
    "ChannelClosed",
    "ConsumerCancelled",
    "PublishError",
    "Unroutable",
    "PublishNacked",
    "RpcTimeout",
]


class AMQPError(Exception):
    """Base class of every error this package raises."""


class ProtocolError(AMQPError):
    """The peer sent bytes that are not valid AMQP 0-9-1 (bad frame, unexpected method, ...).

    ``reply_code`` is the AMQP code we report to the broker when closing (501 frame error,
    502 syntax error, 503 command invalid, 504 channel error, 505 unexpected frame).
    """

    def __init__(self, text: str, reply_code: int = 501) -> None:
        super().__init__(f"AMQP protocol error ({reply_code}): {text}")
        self.reply_code = reply_code
        self.reply_text = text


class _BrokerClose(AMQPError):
    def __init__(self, reply_code: int, reply_text: str, class_id: int = 0, method_id: int = 0):
        super().__init__(f"{reply_code} {reply_text}")
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.class_id = class_id
        self.method_id = method_id


class ConnectionClosed(_BrokerClose):
    """The broker closed the connection (``connection.close``: 320 forced, 403 access refused,
    530 vhost not allowed, ...), or the connection was closed by us and is unusable."""


class ConnectionLost(AMQPError):
    """The TCP connection dropped (or missed heartbeats). Pending RPC calls fail with this; a
    reconnecting connection keeps going after a new connection is up."""


class ChannelClosed(_BrokerClose):
    """The broker closed a channel (``channel.close``: 404 not found, 406 precondition failed,
    403 access refused, ...). The channel re-opens itself on its next use."""


class ConsumerCancelled(AMQPError):
    """The broker cancelled a consumer (its queue was deleted)."""


class PublishError(AMQPError):
    """A confirmed publish was not accepted."""


class Unroutable(PublishError):
    """A ``mandatory`` publish was returned by the broker (``basic.return``: 312 NO_ROUTE)."""

    def __init__(self, reply_code: int, reply_text: str, exchange: str, routing_key: str):
        super().__init__(f"{reply_code} {reply_text} (exchange={exchange!r}, "
                         f"routing_key={routing_key!r})")
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.exchange = exchange
        self.routing_key = routing_key


class PublishNacked(PublishError):
    """The broker answered a publish with ``basic.nack`` (internal error, queue overflow)."""


class RpcTimeout(AMQPError, TimeoutError):
    """No reply arrived within the call's timeout."""
