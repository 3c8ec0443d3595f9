"""RabbitMQ answers AMQP 0-9-1: the protocol header gets connection.start (no client library)."""

import socket
import struct
from urllib.parse import urlsplit


def test_protocol_header_gets_connection_start(amqp_url: str) -> None:
    url = urlsplit(amqp_url)
    with socket.create_connection((url.hostname, url.port or 5672), timeout=5) as sock:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        header = b""
        while len(header) < 7 + 6:
            chunk = sock.recv(7 + 6 - len(header))
            assert chunk, "broker closed the connection"
            header += chunk
    frame_type, channel, _size = struct.unpack(">BHI", header[:7])
    class_id, method_id, major, minor = struct.unpack(">HHBB", header[7:13])
    assert (frame_type, channel) == (1, 0)  # a method frame on channel 0
    assert (class_id, method_id) == (10, 10)  # connection.start
    assert (major, minor) == (0, 9)
