"""Binding a hypercorn server's sockets ourselves, shared by the gateway and the media server:
so the bound port is known before serving (port 0 works) and a port in use is a one-line error."""

from __future__ import annotations

from typing import Any, Callable

from hypercorn.config import Config, Sockets

from .settings import SettingsError

__all__ = ["bind_address", "listen", "Started"]


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen(config: Config, what: str) -> tuple[Sockets, str, int]:
    """Create and listen on ``config.bind``; the sockets and the first one's bound host and port."""
    try:
        sockets = config.create_sockets()
    except OSError as exc:
        raise SettingsError(f"{what} cannot listen on {', '.join(config.bind)}: {exc.strerror}") from None
    for sock in sockets.insecure_sockets:
        sock.listen(config.backlog)
    host, port = sockets.insecure_sockets[0].getsockname()[:2]
    return sockets, host, port


class Started:
    """The ``task_status`` hypercorn's ``worker_serve`` wants; it reports its binds, our callers
    want one value of their own, so ``started`` calls ``report`` instead."""

    def __init__(self, report: Callable[[], Any]) -> None:
        self._report = report

    def started(self, value: object = None) -> None:
        self._report()
