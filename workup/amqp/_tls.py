"""TLS for ``amqps://``: the client's ``ssl.SSLContext`` from the connection parameters."""

from __future__ import annotations

import ssl

from ._core._params import ConnectionParams

__all__ = ["client_context"]


def client_context(p: ConnectionParams) -> ssl.SSLContext:
    """Verify the broker against ``cacertfile`` (else the system's CAs) and its host name unless
    ``verify`` is off; present a client certificate when ``certfile`` is set. A file that cannot
    be read is a ``ValueError`` with one line."""
    try:
        ctx = ssl.create_default_context(cafile=p.cacertfile)
        if p.certfile:
            ctx.load_cert_chain(p.certfile, p.keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"AMQP TLS: cannot load the certificate files: {exc}") from None
    if not p.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
