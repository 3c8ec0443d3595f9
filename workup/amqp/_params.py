"""Connection parameters and ``amqp://`` URL parsing (RabbitMQ's URI spec)."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

__all__ = ["ConnectionParams", "parse_url"]


class ConnectionParams(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "127.0.0.1"
    port: int = 5672
    username: str = "guest"
    password: str = "guest"
    virtual_host: str = "/"
    # What we propose in connection.tune-ok; the broker's smaller non-zero value wins.
    heartbeat: int = 60
    frame_max: int = 131072
    channel_max: int = 2047
    connect_timeout: float = 10.0

    def __repr__(self) -> str:  # never print the password
        return (f"ConnectionParams(amqp://{self.username}@{self.host}:{self.port}"
                f"/{self.virtual_host!r}, heartbeat={self.heartbeat})")


_QUERY_INT = {"heartbeat": "heartbeat", "frame_max": "frame_max", "channel_max": "channel_max"}
_QUERY_FLOAT = {"connection_timeout": "connect_timeout", "connect_timeout": "connect_timeout"}


def parse_url(url: str) -> ConnectionParams:
    """Parse ``amqp://user:pass@host:port/vhost?heartbeat=30``.

    As in RabbitMQ's URI spec, an absent path means vhost ``/``, an empty path (``host/``) the
    vhost ``""``... which nobody wants, so we map it to ``/`` as well; ``%2F`` is ``/``.
    Raises ``ValueError`` with a one-line reason.
    """
    parts = urlsplit(url)
    if parts.scheme != "amqp":
        raise ValueError(f"unsupported AMQP URL scheme {parts.scheme!r} (expected amqp://)")
    try:
        port = parts.port or 5672
    except ValueError as exc:
        raise ValueError(f"bad port in AMQP URL: {exc}") from None
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    fields: dict[str, object] = {
        "host": parts.hostname or "127.0.0.1",
        "port": port,
        "virtual_host": vhost,
    }
    if parts.username is not None:
        fields["username"] = unquote(parts.username)
    if parts.password is not None:
        fields["password"] = unquote(parts.password)
    for key, values in parse_qs(parts.query).items():
        value = values[-1]
        try:
            if key in _QUERY_INT:
                fields[_QUERY_INT[key]] = int(value)
            elif key in _QUERY_FLOAT:
                fields[_QUERY_FLOAT[key]] = float(value)
            else:
                raise ValueError(f"unknown AMQP URL option {key!r}")
        except ValueError as exc:
            if "unknown" in str(exc):
                raise
            raise ValueError(f"bad value for AMQP URL option {key!r}: {value!r}") from None
    for key in ("heartbeat", "frame_max", "channel_max"):
        if int(fields.get(key, 0)) < 0:  # type: ignore[call-overload]
            raise ValueError(f"AMQP URL option {key!r} must not be negative")
    return ConnectionParams(**fields)  # type: ignore[arg-type]
