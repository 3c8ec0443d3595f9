"""The sans-IO core without sockets: handshake, channel state, content assembly, confirms
bookkeeping, ack coalescing and protocol errors."""

from __future__ import annotations

import pytest
from pamqp import commands as C

from workup.amqp import ConnectionParams, Delivery, Properties, ProtocolError
from workup.amqp._core._protocol import negotiate
from workup.amqp.lowlevel import (ACK, NACK, REJECT, ChannelClosedByBroker, ChannelState,
                                  ConnectionClosedByBroker, ConnectionCore, ConnectionState,
                                  ConsumerCancelledByBroker, Delivered, MessageReturned,
                                  MethodReply, PublishConfirmed, RawDelivery, RequestsAbandoned)

from ._wire import content, frame, open_core, parse, start_frame


def test_handshake() -> None:
    core = ConnectionCore(ConnectionParams(username="u", password="p", virtual_host="/v",
                                           heartbeat=30, frame_max=65536), name="t")
    core.start()
    assert core.data_to_send() == b"AMQP\x00\x00\x09\x01"
    assert core.receive_data(start_frame()) == []
    [(_, start_ok)] = parse(core.data_to_send())
    assert start_ok.mechanism == "PLAIN" and start_ok.response == "\0u\0p"
    assert start_ok.client_properties["connection_name"] == "t"
    assert start_ok.client_properties["capabilities"]["publisher_confirms"] is True
    assert core.receive_data(frame(C.Connection.Tune(0, 131072, 60))) == []
    [(_, tune_ok), (_, open_)] = parse(core.data_to_send())
    assert (tune_ok.channel_max, tune_ok.frame_max, tune_ok.heartbeat) == (2047, 65536, 30)
    assert open_.virtual_host == "/v"
    [opened] = core.receive_data(frame(C.Connection.OpenOk()))
    assert (opened.frame_max, opened.heartbeat) == (65536, 30)
    assert core.state is ConnectionState.OPEN


def test_negotiate() -> None:
    assert negotiate(0, 10) == 10
    assert negotiate(10, 0) == 10
    assert negotiate(5, 10) == 5
    assert negotiate(0, 0) == 0


def test_heartbeat_zero_disables() -> None:
    core = ConnectionCore(ConnectionParams(heartbeat=0))
    core.start()
    core.receive_data(start_frame())
    core.receive_data(frame(C.Connection.Tune(2047, 131072, 60)))
    assert core.heartbeat == 0


def test_no_plain_mechanism() -> None:
    core = ConnectionCore(ConnectionParams())
    core.start()
    with pytest.raises(ProtocolError, match="PLAIN"):
        core.receive_data(start_frame("AMQPLAIN EXTERNAL"))


def test_external_mechanism_sends_an_empty_response() -> None:
    core = ConnectionCore(ConnectionParams(auth_mechanism="EXTERNAL", tls=True, certfile="/c.pem"))
    core.start()
    core.data_to_send()
    core.receive_data(start_frame("PLAIN EXTERNAL"))
    [(_, start_ok)] = parse(core.data_to_send())
    assert (start_ok.mechanism, start_ok.response) == ("EXTERNAL", "")
    refused = ConnectionCore(ConnectionParams(auth_mechanism="EXTERNAL"))
    refused.start()
    with pytest.raises(ProtocolError, match="does not offer EXTERNAL"):
        refused.receive_data(start_frame("PLAIN AMQPLAIN"))


def test_method_out_of_order_in_handshake() -> None:
    core = ConnectionCore(ConnectionParams())
    core.start()
    with pytest.raises(ProtocolError, match="unexpected Connection.OpenOk"):
        core.receive_data(frame(C.Connection.OpenOk()))


def test_broker_closes_connection() -> None:
    core = open_core()
    [event] = core.receive_data(frame(C.Connection.Close(320, "CONNECTION_FORCED - bye", 0, 0)))
    assert event == ConnectionClosedByBroker(320, "CONNECTION_FORCED - bye", 0, 0)
    [(_, close_ok)] = parse(core.data_to_send())
    assert isinstance(close_ok, C.Connection.CloseOk)
    assert core.state is ConnectionState.CLOSED


def test_our_close_ignores_everything_but_close_ok() -> None:
    core = open_core()
    core.close()
    [(_, close)] = parse(core.data_to_send())
    assert close.reply_code == 200
    assert core.receive_data(frame(C.Connection.Blocked("x"))) == []
    [event] = core.receive_data(frame(C.Connection.CloseOk()))
    assert type(event).__name__ == "ConnectionCloseOk"


def _open_channel(core: ConnectionCore, number: int = 1):
    channel = core.open_channel(number, "open-token")
    [(n, method)] = parse(core.data_to_send())
    assert (n, method.name) == (number, "Channel.Open")
    assert channel.state is ChannelState.OPENING
    [reply] = core.receive_data(frame(C.Channel.OpenOk(), number))
    assert reply == MethodReply(number, reply.method, "open-token")
    assert channel.state is ChannelState.OPEN
    return channel


def test_sync_replies_are_matched_in_order() -> None:
    core = open_core()
    channel = _open_channel(core)
    channel.send(C.Queue.Declare(queue="a"), "t1")
    channel.send(C.Basic.Qos(prefetch_count=5), "t2")
    channel.send(C.Queue.Declare(queue="b", nowait=True), "never")
    assert [m.name for _, m in parse(core.data_to_send())] == [
        "Queue.Declare", "Basic.Qos", "Queue.Declare"]
    events = core.receive_data(frame(C.Queue.DeclareOk("a", 0, 0), 1)
                               + frame(C.Basic.QosOk(), 1))
    assert [(e.token, e.method.name) for e in events] == [("t1", "Queue.DeclareOk"),
                                                         ("t2", "Basic.QosOk")]
    with pytest.raises(ProtocolError, match="unexpected Queue.DeclareOk"):
        core.receive_data(frame(C.Queue.DeclareOk("b", 0, 0), 1))


def test_wrong_reply_is_a_protocol_error() -> None:
    core = open_core()
    channel = _open_channel(core)
    channel.send(C.Queue.Declare(queue="a"), "t1")
    with pytest.raises(ProtocolError, match="expected Queue.DeclareOk"):
        core.receive_data(frame(C.Basic.QosOk(), 1))


def test_frame_for_unopened_channel() -> None:
    core = open_core()
    with pytest.raises(ProtocolError) as info:
        core.receive_data(frame(C.Basic.QosOk(), 7))
    assert info.value.reply_code == 504


def test_content_assembly_across_frames() -> None:
    core = open_core(frame_max=4096, server_frame_max=4096)
    channel = _open_channel(core)
    channel.send(C.Basic.Consume(queue="q", consumer_tag="ct"), "c")
    core.receive_data(frame(C.Basic.ConsumeOk("ct"), 1))
    body = bytes(range(256)) * 40  # 10240 bytes: three body frames at frame_max 4096
    data = content(1, C.Basic.Deliver("ct", 9, True, "ex", "rk"), body, frame_max=4096,
                   correlation_id="c1", headers={"k": "v"})
    events = []
    for i in range(0, len(data), 1000):
        events += core.receive_data(data[i:i + 1000])
    [event] = events
    assert isinstance(event, Delivered) and event.channel == 1
    d = event.delivery
    assert (d.body, d.delivery_tag, d.redelivered, d.exchange, d.routing_key) == (
        body, 9, True, "ex", "rk")
    assert d.properties == Properties(headers={"k": "v"}, correlation_id="c1")


def test_empty_body_needs_no_body_frame() -> None:
    core = open_core()
    _open_channel(core)
    [event] = core.receive_data(content(1, C.Basic.Deliver("ct", 1, False, "", "q"), b""))
    assert event.delivery.body == b""


def test_deliveries_are_plain_values_unless_the_shell_asks() -> None:
    data = content(1, C.Basic.Deliver("ct", 1, False, "", "q"), b"x")
    core = open_core()
    _open_channel(core)
    [event] = core.receive_data(data)
    assert type(event.delivery) is RawDelivery and not hasattr(event.delivery, "ack")
    # the shell hands its settleable subclass to the core: built directly, no copy
    shell = open_core(delivery_type=Delivery)
    _open_channel(shell)
    [event] = shell.receive_data(data)
    delivery = event.delivery
    assert type(delivery) is Delivery and (delivery.body, delivery.settled) == (b"x", False)
    delivery.ack()  # no channel attached: only marked
    assert delivery.settled
    with pytest.raises(RuntimeError):
        delivery.nack()


@pytest.mark.parametrize("data", [
    frame(C.Basic.Deliver("ct", 1, False, "", "q"), 1) + frame(C.Basic.QosOk(), 1),
    b"\x03\x00\x01\x00\x00\x00\x01x\xce",  # body without a method
    content(1, C.Basic.Deliver("ct", 1, False, "", "q"), b"abc").rsplit(b"\x03\x00\x01", 1)[0]
    + b"\x03\x00\x01\x00\x00\x00\x05abcde\xce",  # body longer than the header says
])
def test_content_errors(data: bytes) -> None:
    core = open_core()
    _open_channel(core)
    with pytest.raises(ProtocolError) as info:
        core.receive_data(data)
    assert info.value.reply_code == 505


def test_confirms_bookkeeping() -> None:
    core = open_core()
    channel = _open_channel(core)
    assert channel.publish("", "q", b"x", Properties()) is None  # not in confirm mode
    channel.send(C.Confirm.Select(), "sel")
    core.receive_data(frame(C.Confirm.SelectOk(), 1))
    seqs = [channel.publish("", "q", b"x", Properties()) for _ in range(6)]
    assert seqs == [1, 2, 3, 4, 5, 6]
    [e] = core.receive_data(frame(C.Basic.Ack(3, True), 1))
    assert e == PublishConfirmed(1, [1, 2, 3], True)
    [e] = core.receive_data(frame(C.Basic.Ack(5, False), 1))
    assert e == PublishConfirmed(1, [5], True)
    [e] = core.receive_data(frame(C.Basic.Nack(6, True, False), 1))
    assert e == PublishConfirmed(1, [4, 6], False)
    assert channel.unconfirmed() == []
    [e] = core.receive_data(frame(C.Basic.Ack(6, True), 1))  # duplicate: nothing left
    assert e.seqs == []


def test_returned_message_matches_its_publish() -> None:
    core = open_core()
    channel = _open_channel(core)
    channel.send(C.Confirm.Select(), "sel")
    core.receive_data(frame(C.Confirm.SelectOk(), 1))
    channel.publish("ex", "a", b"1", Properties(correlation_id="x"), mandatory=True)
    channel.publish("ex", "b", b"2", Properties(correlation_id="y"), mandatory=True)
    channel.publish("ex", "b", b"3", Properties(correlation_id="z"), mandatory=False)
    events = core.receive_data(
        content(1, C.Basic.Return(312, "NO_ROUTE", "ex", "b"), b"2", correlation_id="y")
        + frame(C.Basic.Ack(3, True), 1))
    returned, confirmed = events
    assert isinstance(returned, MessageReturned) and returned.seq == 2
    assert returned.message.reply_code == 312 and returned.message.body == b"2"
    assert confirmed.seqs == [1, 3]


def test_return_without_confirms() -> None:
    core = open_core()
    channel = _open_channel(core)
    channel.publish("", "nowhere", b"1", Properties(correlation_id="c"), mandatory=True)
    [event] = core.receive_data(
        content(1, C.Basic.Return(312, "NO_ROUTE", "", "nowhere"), b"1", correlation_id="c"))
    assert event.seq is None and event.message.properties.correlation_id == "c"


def _deliveries(core: ConnectionCore, tags: list[int], consumer: str = "ct") -> list:
    data = b"".join(content(1, C.Basic.Deliver(consumer, t, False, "", "q"), b"m")
                    for t in tags)
    return [e.delivery for e in core.receive_data(data)]


def test_acks_are_coalesced() -> None:
    core = open_core()
    channel = _open_channel(core)
    _deliveries(core, [1, 2, 3, 4, 5, 6])
    for tag in (2, 1, 3):
        channel.settle(tag, ACK, False)
    channel.settle(4, REJECT, False)  # written at once
    channel.settle(6, ACK, False)
    sent = [(m.name, getattr(m, "delivery_tag", None), getattr(m, "multiple", None))
            for _, m in parse(core.data_to_send())]
    assert sent == [("Basic.Reject", 4, None), ("Basic.Ack", 3, True), ("Basic.Ack", 6, False)]
    channel.settle(5, NACK, True)
    assert [m.name for _, m in parse(core.data_to_send())] == ["Basic.Nack"]
    _deliveries(core, [7])
    channel.settle(7, ACK, False)
    # 4, 5 and 6 were settled already: 7 is acked as "everything up to 7"
    [(_, ack)] = parse(core.data_to_send())
    assert (ack.delivery_tag, ack.multiple) == (7, True)
    assert core.data_to_send() == b""


def test_no_ack_consumers_are_not_tracked() -> None:
    core = open_core()
    channel = _open_channel(core)
    channel.send(C.Basic.Consume(queue="q", consumer_tag="auto", no_ack=True), "c")
    core.receive_data(frame(C.Basic.ConsumeOk("auto"), 1))
    core.data_to_send()
    _deliveries(core, [1, 2], consumer="auto")
    _deliveries(core, [3])
    channel.settle(3, ACK, False)
    [(_, ack)] = parse(core.data_to_send())
    assert (ack.delivery_tag, ack.multiple) == (3, True)


def test_broker_closes_channel() -> None:
    core = open_core()
    channel = _open_channel(core)
    channel.send(C.Confirm.Select(), "sel")
    core.receive_data(frame(C.Confirm.SelectOk(), 1))
    channel.publish("nope", "", b"x", Properties())
    channel.send(C.Queue.Declare(queue="q", passive=True), "declare")
    core.data_to_send()
    [event] = core.receive_data(frame(C.Channel.Close(404, "NOT_FOUND - no exchange", 60, 40),
                                      1))
    assert isinstance(event, ChannelClosedByBroker)
    assert (event.reply_code, event.tokens, event.unconfirmed) == (404, ["declare"], [1])
    assert [m.name for _, m in parse(core.data_to_send())] == ["Channel.CloseOk"]
    assert channel.state is ChannelState.CLOSED
    with pytest.raises(ProtocolError):
        channel.publish("", "q", b"x", Properties())
    _open_channel(core)  # the number can be used again


def test_our_channel_close_drops_deliveries() -> None:
    core = open_core()
    channel = _open_channel(core)
    channel.send(C.Channel.Close(200, "bye", 0, 0), "close")
    assert channel.state is ChannelState.CLOSING
    assert _deliveries(core, [1]) == []
    assert not core.channel_free(1)
    with pytest.raises(ValueError, match="in use"):
        core.open_channel(1)
    [reply] = core.receive_data(frame(C.Channel.CloseOk(), 1))
    assert reply.token == "close" and channel.state is ChannelState.CLOSED
    assert core.channel_free(1) and core.channel_free(2)


def test_replies_to_requests_sent_before_our_close_still_answer_them() -> None:
    # a bind in flight when the application closes the channel: BindOk, then CloseOk
    core = open_core()
    channel = _open_channel(core)
    channel.send(C.Queue.Bind(queue="q", exchange="x", routing_key="k"), "bind")
    channel.send(C.Channel.Close(200, "bye", 0, 0), "close")
    assert _deliveries(core, [1]) == []  # deliveries are still dropped
    events = core.receive_data(frame(C.Queue.BindOk(), 1) + frame(C.Channel.CloseOk(), 1))
    assert [(e.token, e.method.name) for e in events] == [("bind", "Queue.BindOk"),
                                                         ("close", "Channel.CloseOk")]
    assert channel.state is ChannelState.CLOSED


def test_close_ok_before_earlier_replies_abandons_those_requests() -> None:
    # RabbitMQ may answer our close without the consume-ok of a consume sent just before it
    core = open_core()
    channel = _open_channel(core)
    channel.send(C.Basic.Consume(queue="q", consumer_tag="ct"), "consume")
    channel.send(C.Channel.Close(200, "bye", 0, 0), "close")
    abandoned, closed = core.receive_data(frame(C.Channel.CloseOk(), 1))
    assert isinstance(abandoned, RequestsAbandoned) and abandoned.tokens == ["consume"]
    assert (closed.token, closed.method.name) == ("close", "Channel.CloseOk")
    assert channel.state is ChannelState.CLOSED and core.channel_free(1)


def test_broker_cancels_consumer() -> None:
    core = open_core()
    channel = _open_channel(core)
    channel.send(C.Basic.Consume(queue="q", consumer_tag="ct"), "c")
    core.receive_data(frame(C.Basic.ConsumeOk("ct"), 1))
    [event] = core.receive_data(frame(C.Basic.Cancel("ct", nowait=True), 1))
    assert event == ConsumerCancelledByBroker(1, "ct")
    assert channel.consumers == {}


def test_flow_is_answered() -> None:
    core = open_core()
    _open_channel(core)
    assert core.receive_data(frame(C.Channel.Flow(False), 1)) == []
    [(_, ok)] = parse(core.data_to_send())
    assert ok.name == "Channel.FlowOk" and ok.active is False


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pamqp, on deprecated method ids
def test_mutated_streams_raise_only_protocol_errors() -> None:
    """Fuzz: any corruption of a valid broker stream is a ProtocolError or goes through."""
    import random

    valid = b"".join([
        content(1, C.Basic.Deliver("ct", 1, False, "ex", "rk"), b"x" * 300, correlation_id="a",
                headers={"k": "v", "n": 1, "f": 1.5, "l": [1, "a"], "t": {"x": True}}),
        frame(C.Basic.Ack(1, False), 1),
        content(1, C.Basic.Return(312, "NO_ROUTE", "", "q"), b"r", message_id="m"),
        frame(C.Channel.Flow(True), 1),
        frame(C.Queue.DeclareOk("q", 1, 2), 1),
    ])
    rng = random.Random(7)
    outcomes = {"ok": 0, "error": 0}
    for _ in range(3000):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            choice = rng.random()
            if choice < 0.6:
                data[pos] = rng.randrange(256)
            elif choice < 0.8:
                del data[pos:pos + rng.randint(1, 8)]
            else:
                data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        core = open_core()
        channel = _open_channel(core)
        channel.send(C.Confirm.Select(), "sel")
        core.receive_data(frame(C.Confirm.SelectOk(), 1))
        channel.send(C.Queue.Declare(queue="q"), "declare")
        try:
            core.receive_data(bytes(data))
            outcomes["ok"] += 1
        except ProtocolError:
            outcomes["error"] += 1
    assert outcomes["error"] > 1000  # the mutations were mostly caught, and nothing else raised
