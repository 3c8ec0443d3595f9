"""The sans-IO state machines and their events, for tests and tools that bring their own I/O
(the ``trio.lowlevel`` of ``workup.amqp``: not for daily use).

    core = ConnectionCore(amqp.ConnectionParams())
    core.start()
    sock.send_all(core.data_to_send())
    for event in core.receive_data(sock.recv(65536)): ...   # ConnectionOpened, Delivered, ...

``ACK``/``NACK``/``REJECT`` are the ``kind`` of :meth:`ChannelCore.settle`; a delivery is a
plain :class:`RawDelivery` value (``workup.amqp.Delivery`` is the shell's settleable subclass).
"""

from ._core import ACK as ACK
from ._core import NACK as NACK
from ._core import REJECT as REJECT
from ._core import Blocked as Blocked
from ._core import ChannelClosedByBroker as ChannelClosedByBroker
from ._core import ChannelCore as ChannelCore
from ._core import ChannelState as ChannelState
from ._core import ConnectionClosedByBroker as ConnectionClosedByBroker
from ._core import ConnectionCloseOk as ConnectionCloseOk
from ._core import ConnectionCore as ConnectionCore
from ._core import ConnectionOpened as ConnectionOpened
from ._core import ConnectionState as ConnectionState
from ._core import ConsumerCancelledByBroker as ConsumerCancelledByBroker
from ._core import Delivered as Delivered
from ._core import Event as Event
from ._core import FrameReader as FrameReader
from ._core import MessageReturned as MessageReturned
from ._core import MethodReply as MethodReply
from ._core import RawDelivery as RawDelivery
from ._core import PublishConfirmed as PublishConfirmed
from ._core import RequestsAbandoned as RequestsAbandoned
from ._core import Unblocked as Unblocked

__all__ = [
    "ACK", "NACK", "REJECT", "RawDelivery",
    "ChannelCore", "ChannelState", "ConnectionCore", "ConnectionState", "FrameReader",
    # events
    "Blocked", "ChannelClosedByBroker", "ConnectionClosedByBroker", "ConnectionCloseOk",
    "ConnectionOpened", "ConsumerCancelledByBroker", "Delivered", "Event", "MessageReturned",
    "MethodReply", "PublishConfirmed", "RequestsAbandoned", "Unblocked",
]
