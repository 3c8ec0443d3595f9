"""The sans-IO half of the AMQP client: bytes in, events out, bytes to send (the h11 shape).

Rule: nothing under ``_core/`` imports trio or touches a socket; it needs only the standard
library, msgspec and pamqp (``tests/amqp/test_exports.py`` imports it with trio blocked).
The trio shell (``workup/amqp/_connection.py`` and its siblings) drives it.

- ``_frames``: framing and the hot-path frame codecs; ``_message``: properties and the
  received-message values; ``_channel`` (:class:`ChannelCore`) and ``_protocol``
  (:class:`ConnectionCore`): the state machines; ``_events``: what they report;
  ``_params``: connection parameters and URL parsing; ``_topology``: what a connection
  declared, for replay; ``_errors``: the exception tree (shared with the shell).

The names below are the core's public ones; each is re-exported by exactly one face:
``workup.amqp`` (what an application uses) or ``workup.amqp.lowlevel`` (the state machines
and their events, for tests and tools that bring their own I/O).
"""

from ._channel import ChannelCore as ChannelCore
from ._channel import ChannelState as ChannelState
from ._errors import AMQPError as AMQPError
from ._errors import ChannelClosed as ChannelClosed
from ._errors import ConnectionClosed as ConnectionClosed
from ._errors import ConnectionLost as ConnectionLost
from ._errors import ConsumerCancelled as ConsumerCancelled
from ._errors import ProtocolError as ProtocolError
from ._errors import PublishError as PublishError
from ._errors import PublishNacked as PublishNacked
from ._errors import RpcTimeout as RpcTimeout
from ._errors import Unroutable as Unroutable
from ._events import Blocked as Blocked
from ._events import ChannelClosedByBroker as ChannelClosedByBroker
from ._events import ConnectionClosedByBroker as ConnectionClosedByBroker
from ._events import ConnectionCloseOk as ConnectionCloseOk
from ._events import ConnectionOpened as ConnectionOpened
from ._events import ConsumerCancelledByBroker as ConsumerCancelledByBroker
from ._events import Delivered as Delivered
from ._events import Event as Event
from ._events import MessageReturned as MessageReturned
from ._events import MethodReply as MethodReply
from ._events import PublishConfirmed as PublishConfirmed
from ._events import RequestsAbandoned as RequestsAbandoned
from ._events import Unblocked as Unblocked
from ._frames import FrameReader as FrameReader
from ._message import ACK as ACK
from ._message import NACK as NACK
from ._message import REJECT as REJECT
from ._message import Properties as Properties
from ._message import RawDelivery as RawDelivery
from ._message import Returned as Returned
from ._params import ConnectionParams as ConnectionParams
from ._params import parse_url as parse_url
from ._protocol import ConnectionCore as ConnectionCore
from ._protocol import ConnectionState as ConnectionState

__all__ = [
    "ACK", "AMQPError", "Blocked", "ChannelClosed", "ChannelClosedByBroker", "ChannelCore",
    "ChannelState", "ConnectionClosed", "ConnectionClosedByBroker", "ConnectionCloseOk",
    "ConnectionCore", "ConnectionLost", "ConnectionOpened", "ConnectionParams",
    "ConnectionState", "ConsumerCancelled", "ConsumerCancelledByBroker", "Delivered",
    "Event", "FrameReader", "MessageReturned", "MethodReply", "NACK",
    "Properties", "ProtocolError", "PublishConfirmed", "PublishError", "PublishNacked",
    "REJECT", "RawDelivery", "RequestsAbandoned", "Returned", "RpcTimeout", "Unblocked", "Unroutable",
    "parse_url",
]
