"""Does a dev service really answer? One short protocol exchange per service.

Standard library only, so `ops/dev/services` can run it with the system python3
before any venv exists, and `tests/conftest.py` can import it without drivers.
Each `ping_*` returns None when the server answered as expected, else a one-line
reason. A TCP accept is not enough: a booting Cassandra or PostgreSQL accepts
connections well before it can serve a query.

CLI: python3 servicecheck.py NAME [URL]   (exit 0 = answers, 1 = not, with the reason)
"""

from __future__ import annotations

import socket
import struct
import sys
from typing import Callable
from urllib.parse import urlsplit

TIMEOUT = 3.0

DEFAULT_URLS = {
    "rabbitmq": "amqp://127.0.0.1:5672/workup",   # the check logs in as nobody
    "redis": "redis://127.0.0.1:6379/0",
    "postgres": "postgresql://postgres@127.0.0.1:5432/postgres",
    "ferretdb": "mongodb://127.0.0.1:27017/",
    "cassandra": "127.0.0.1:9042",
}


class _Refused(Exception):
    """The server answered, but not the way a healthy one does."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise _Refused("connection closed by the server")
        buf += chunk
    return buf


def _exchange(host: str, port: int, talk: Callable[[socket.socket], None]) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
            sock.settimeout(TIMEOUT)
            talk(sock)
    except _Refused as exc:
        return str(exc)
    except OSError as exc:  # refused, reset, timed out, unreachable
        return f"{type(exc).__name__}: {exc}"
    return None


def ping_amqp(host: str, port: int) -> str | None:
    """AMQP 0-9-1 protocol header; a broker answers with connection.start."""

    def talk(sock: socket.socket) -> None:
        sock.sendall(b"AMQP\x00\x00\x09\x01")
        ftype, _channel, size = struct.unpack(">BHI", _recv_exact(sock, 7))
        payload = _recv_exact(sock, min(size, 4))
        if ftype != 1 or payload != b"\x00\x0a\x00\x0a":
            raise _Refused(f"no connection.start (frame type {ftype}, method {payload.hex()})")

    return _exchange(host, port, talk)


def ping_redis(host: str, port: int) -> str | None:
    def talk(sock: socket.socket) -> None:
        sock.sendall(b"*1\r\n$4\r\nPING\r\n")
        line = sock.recv(256).split(b"\r\n", 1)[0]
        if line != b"+PONG":
            raise _Refused(f"PING answered {line.decode(errors='replace')!r}")

    return _exchange(host, port, talk)


def ping_postgres(host: str, port: int, user: str = "postgres", dbname: str = "postgres") -> str | None:
    """Startup message without a password: proves the server is ready and trusts `user`."""

    def talk(sock: socket.socket) -> None:
        params = f"user\0{user}\0database\0{dbname}\0\0".encode()
        sock.sendall(struct.pack(">ii", 8 + len(params), 196608) + params)
        for _ in range(100):  # AuthenticationOk, ParameterStatus..., BackendKeyData, ReadyForQuery
            kind, length = struct.unpack(">ci", _recv_exact(sock, 5))
            body = _recv_exact(sock, length - 4)
            if kind == b"Z":
                sock.sendall(b"X\x00\x00\x00\x04")
                return
            if kind == b"E":
                fields = dict((f[:1], f[1:]) for f in body.split(b"\0") if f)
                raise _Refused(fields.get(b"M", body).decode(errors="replace"))
            if kind == b"R" and struct.unpack(">i", body[:4])[0] != 0:
                raise _Refused(f"asks user {user!r} for a password (want trust auth on loopback)")
        raise _Refused("no ReadyForQuery")

    return _exchange(host, port, talk)


def _bson_ping() -> bytes:
    elements = b"\x10ping\x00" + struct.pack("<i", 1)
    elements += b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    return struct.pack("<i", 4 + len(elements) + 1) + elements + b"\x00"


def ping_mongo(host: str, port: int) -> str | None:
    """OP_MSG {ping: 1} on admin; expects ok: 1.0."""

    def talk(sock: socket.socket) -> None:
        body = struct.pack("<i", 0) + b"\x00" + _bson_ping()
        sock.sendall(struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body)
        (length,) = struct.unpack("<i", _recv_exact(sock, 4))
        reply = _recv_exact(sock, length - 4)
        at = reply.find(b"\x01ok\x00")
        if at < 0 or struct.unpack("<d", reply[at + 4 : at + 12])[0] != 1.0:
            raise _Refused("ping did not answer ok: 1")

    return _exchange(host, port, talk)


def _cql_frame(opcode: int, body: bytes) -> bytes:
    return struct.pack(">BBhBi", 4, 0, 0, opcode, len(body)) + body


def _cql_reply(sock: socket.socket) -> tuple[int, bytes]:
    _v, _f, _s, opcode, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    body = _recv_exact(sock, length)
    if opcode == 0x00:  # ERROR: int code, [string] message
        (n,) = struct.unpack(">H", body[4:6])
        raise _Refused(body[6 : 6 + n].decode(errors="replace"))
    return opcode, body


def ping_cassandra(host: str, port: int) -> str | None:
    """CQL v4 STARTUP then SELECT release_version FROM system.local."""

    def talk(sock: socket.socket) -> None:
        key, value = b"CQL_VERSION", b"3.0.0"
        startup = struct.pack(">HH", 1, len(key)) + key + struct.pack(">H", len(value)) + value
        sock.sendall(_cql_frame(0x01, startup))
        opcode, _ = _cql_reply(sock)
        if opcode != 0x02:
            raise _Refused(f"STARTUP answered opcode {opcode:#x}, not READY (authentication on?)")
        query = b"SELECT release_version FROM system.local"
        sock.sendall(_cql_frame(0x07, struct.pack(">i", len(query)) + query + b"\x00\x01\x00"))
        opcode, _ = _cql_reply(sock)
        if opcode != 0x08:
            raise _Refused(f"query answered opcode {opcode:#x}, not RESULT")

    return _exchange(host, port, talk)


def check(name: str, url: str | None = None) -> str | None:
    """Ping service `name` at `url` (a WORKUP_TEST_* style value; default: loopback)."""
    url = url or DEFAULT_URLS[name]
    if name == "cassandra":  # "host:port[,host:port...]": the first one must answer
        host, _, port = url.split(",")[0].strip().rpartition(":")
        return ping_cassandra(host or "127.0.0.1", int(port or 9042))
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port
    if name == "rabbitmq":
        return ping_amqp(host, port or 5672)
    if name == "redis":
        return ping_redis(host, port or 6379)
    if name == "postgres":
        return ping_postgres(host, port or 5432, parts.username or "postgres", parts.path.lstrip("/") or "postgres")
    if name == "ferretdb":
        return ping_mongo(host, port or 27017)
    raise ValueError(f"unknown service {name!r}; known: {', '.join(DEFAULT_URLS)}")


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[1] not in DEFAULT_URLS:
        print(f"usage: servicecheck.py {{{'|'.join(DEFAULT_URLS)}}} [URL]", file=sys.stderr)
        return 2
    problem = check(argv[1], argv[2] if len(argv) == 3 else None)
    if problem:
        print(f"{argv[1]}: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
