"""Connection parameters and ``amqp://`` / ``amqps://`` URL parsing (RabbitMQ's URI spec,
including its TLS query options)."""

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
    # TLS (``amqps://``): the server's certificate is verified against ``cacertfile`` (else the
    # system's CAs) and the host name (or ``server_name``); ``verify=False`` turns that off.
    tls: bool = False
    cacertfile: str | None = None
    certfile: str | None = None      # client certificate (with ``keyfile``), for brokers that ask
    keyfile: str | None = None
    server_name: str | None = None
    verify: bool = True
    # "PLAIN" (username and password) or "EXTERNAL" (the TLS client certificate names the user;
    # RabbitMQ's rabbitmq_auth_mechanism_ssl plugin)
    auth_mechanism: str = "PLAIN"

    def __repr__(self) -> str:  # never print the password
        return (f"ConnectionParams(amqp{'s' if self.tls else ''}://{self.username}@{self.host}:{self.port}"
                f"/{self.virtual_host!r}, heartbeat={self.heartbeat})")


_QUERY_INT = {"heartbeat": "heartbeat", "frame_max": "frame_max", "channel_max": "channel_max"}
_QUERY_FLOAT = {"connection_timeout": "connect_timeout", "connect_timeout": "connect_timeout"}
_QUERY_TLS = {"cacertfile": "cacertfile", "certfile": "certfile", "keyfile": "keyfile",
              "server_name_indication": "server_name"}
_VERIFY = {"verify_peer": True, "verify_none": False}
_MECHANISMS = {"plain": "PLAIN", "external": "EXTERNAL"}


def parse_url(url: str) -> ConnectionParams:
    """Parse ``amqp://user:pass@host:port/vhost?heartbeat=30`` or
    ``amqps://...?cacertfile=/ca.pem&verify=verify_peer&server_name_indication=broker``.

    As in RabbitMQ's URI spec, an absent path means vhost ``/``, an empty path
    (``amqp://host/``) the vhost ``""``... which nobody wants, so we map it to ``/`` as well;
    ``%2F`` is ``/``.
    Raises ``ValueError`` with a one-line reason.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps"):
        raise ValueError(f"unsupported AMQP URL scheme {parts.scheme!r} (expected amqp:// or amqps://)")
    tls = parts.scheme == "amqps"
    try:
        port = parts.port or (5671 if tls else 5672)
    except ValueError as exc:
        raise ValueError(f"bad port in AMQP URL: {exc}") from None
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    fields: dict[str, object] = {
        "host": parts.hostname or "127.0.0.1",
        "port": port,
        "virtual_host": vhost,
        "tls": tls,
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
            elif key == "auth_mechanism":
                if value.lower() not in _MECHANISMS:
                    raise ValueError(f"unknown AMQP auth_mechanism {value!r} (plain or external)")
                fields["auth_mechanism"] = _MECHANISMS[value.lower()]
            elif key in _QUERY_TLS or key == "verify":
                if not tls:
                    raise ValueError(f"AMQP URL option {key!r} needs amqps://")
                if key == "verify":
                    if value not in _VERIFY:
                        raise ValueError(f"bad value for AMQP URL option 'verify': {value!r} "
                                         f"(verify_peer or verify_none)")
                    fields["verify"] = _VERIFY[value]
                else:
                    fields[_QUERY_TLS[key]] = value
            else:
                raise ValueError(f"unknown AMQP URL option {key!r}")
        except ValueError as exc:
            if "unknown" in str(exc) or "amqps" in str(exc) or "verify" in str(exc):
                raise
            raise ValueError(f"bad value for AMQP URL option {key!r}: {value!r}") from None
    if fields.get("auth_mechanism") == "EXTERNAL" and not fields.get("certfile"):
        raise ValueError("AMQP auth_mechanism=external needs amqps:// with a client certificate (certfile)")
    for key in ("heartbeat", "frame_max", "channel_max"):
        if int(fields.get(key, 0)) < 0:  # type: ignore[call-overload]
            raise ValueError(f"AMQP URL option {key!r} must not be negative")
    return ConnectionParams(**fields)  # type: ignore[arg-type]
