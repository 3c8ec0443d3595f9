"""Serving the gateway app with hypercorn's trio worker, and the signal-driven shutdown.

Two pieces of hypercorn are replaced for the gateway's own server (its Config carries the mark
``_GATEWAY``; the media server and any other hypercorn server keep hypercorn's): an answer with
a Content-Length goes out in one socket send, head and body together (:func:`_send_h11_event`),
and a connection's keep-alive timer is one task whose deadline moves (:class:`_IdleTimer`), not
a task cancelled and started again around every request. Same bytes, same bounds
(``tests/gateway/test_writes.py``, ``tests/gateway/test_hardening.py``); under the flow bench
of issue 15 the two gateway processes spent about 15 % less CPU per request (two interleaved
rounds on a busy machine). Both lean on hypercorn internals (``H11Protocol._send_h11_event``,
``TCPServer.idle_task``, ``_read_data``, ``_close``; written against hypercorn 0.18): an
upgrade of hypercorn must run those tests.
"""

from __future__ import annotations

import gc
import logging
import math
import signal
import socket
from typing import Any, Awaitable, Callable

import h11
import trio
from hypercorn.config import Config
from hypercorn.events import RawData
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.trio.run import worker_serve
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.utils import wrap_app

from .._listening import Started, bind_address, listen
from ..settings import Settings, SettingsError
from ._state import GatewayApp

__all__ = ["serve_app", "hypercorn_config", "until_signalled", "run_until_stopped", "settle_heap"]


IDLE_TIMEOUT = Settings().http_idle_timeout
MAX_HEADER_BYTES = 16 * 1024
_GATEWAY = "workup_gateway"   # set on the gateway's hypercorn Config only
_PENDING = "_workup_pending_head"


def _has_length(headers: Any) -> bool:
    return any(name == b"content-length" for name, _ in headers)


async def _send_h11_event(self: Any, event: Any) -> None:
    """hypercorn's ``H11Protocol._send_h11_event``, except that the head of a response with a
    Content-Length is held back and written with what follows it (the body, or the end of an
    empty one): one socket send per answer instead of two, so the client is woken once. Only a
    Content-Length answer is held (its body follows at once: quart sends it right after the
    head); a streamed (chunked) head goes out alone as before. The end of a Content-Length body
    has no bytes: nothing is sent for it. Bytes and their order on the wire are unchanged."""
    if not getattr(self.config, _GATEWAY, False):
        await _hypercorn_send_h11_event(self, event)
        return
    try:
        data = self.connection.send(event)
    except h11.LocalProtocolError:
        if self.connection.their_state != h11.ERROR:
            raise
        return
    head = getattr(self, _PENDING, None)
    if head is not None:
        setattr(self, _PENDING, None)
        data = head + data
    elif isinstance(event, h11.Response) and _has_length(event.headers):
        setattr(self, _PENDING, data)
        return
    elif not data:   # the end of a Content-Length body: no bytes, so no trip through the socket lock
        return
    await self.send(RawData(data=data))


_hypercorn_send_h11_event = H11Protocol._send_h11_event
H11Protocol._send_h11_event = _send_h11_event  # type: ignore[method-assign]


class _IdleTimer:
    """hypercorn's keep-alive timer of one connection (its ``TrioSingleTask`` running
    ``TCPServer._idle_timeout``) without a task per request: hypercorn stops the timer when a
    request starts and restarts it when the answer is done, each time cancelling a task and
    starting a new one. Here one task per connection waits and the calls only move its deadline.
    The same rule: while armed, the connection is closed ``keep_alive_timeout`` after the last
    restart, or at once when the server terminates; while stopped (a request in progress), never."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._armed = False
        self._deadline = math.inf
        self._scope: trio.CancelScope | None = None
        self._wake: trio.Event | None = None
        self._running = False
        self._finished = False

    async def restart(self, task_group: Any, action: Any) -> None:
        self._armed = True
        self._deadline = trio.current_time() + self._server.config.keep_alive_timeout
        if self._scope is not None:
            self._scope.deadline = self._deadline
        elif self._wake is not None:
            self._wake.set()
        if not self._running:
            self._running = True
            task_group._nursery.start_soon(self._run)

    async def stop(self) -> None:
        self._armed = False
        if self._scope is not None:
            self._scope.deadline = math.inf

    def finish(self) -> None:
        """The connection is closed: a stopped timer's task ends now (hypercorn had none running);
        an armed one runs out as hypercorn's would."""
        self._finished = True
        if not self._armed:
            if self._scope is not None:
                self._scope.cancel()
            if self._wake is not None:
                self._wake.set()

    async def _run(self) -> None:
        terminated = self._server.context.terminated
        while True:
            if not self._armed:
                if self._finished:
                    return
                self._wake = trio.Event()
                await self._wake.wait()
                self._wake = None
                continue
            with trio.CancelScope(deadline=self._deadline) as scope:
                self._scope = scope
                await terminated.wait()
            self._scope = None
            if self._armed and (terminated.is_set() or trio.current_time() >= self._deadline):
                break
        with trio.CancelScope(shield=True):
            await self._server._initiate_server_close()


def _tcp_server_init(self: Any, app: Any, config: Config, *args: Any) -> None:
    _hypercorn_tcp_server_init(self, app, config, *args)
    if getattr(config, _GATEWAY, False):
        self.idle_task = _IdleTimer(self)


def _finishing(original: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
    """``original`` (a TCPServer method after which the connection is over: ``_read_data`` saw
    the end, ``_close`` closed it), then the idle timer told so; both run inside the
    connection's task group, which waits for the timer's task."""
    async def finishing(self: Any) -> None:
        try:
            await original(self)
        finally:
            if isinstance(self.idle_task, _IdleTimer):
                self.idle_task.finish()
    return finishing


_hypercorn_tcp_server_init = TCPServer.__init__
TCPServer.__init__ = _tcp_server_init  # type: ignore[method-assign,assignment]
TCPServer._read_data = _finishing(TCPServer._read_data)  # type: ignore[method-assign,assignment]
TCPServer._close = _finishing(TCPServer._close)  # type: ignore[method-assign,assignment]


def hypercorn_config(host: str, port: int, *, graceful_timeout: float = 5.0,
                     idle_timeout: float = IDLE_TIMEOUT) -> Config:
    """Slow clients: hypercorn's trio worker runs one timer (``keep_alive_timeout``) from the
    connection's start, or the end of the previous answer, until a request's headers are complete
    (h11 parsed them); a connection whose headers do not arrive within ``idle_timeout`` (trickled
    or not at all) is closed, and so is a keep-alive connection idle that long. Headers are at most
    ``MAX_HEADER_BYTES`` (hypercorn answers 400 beyond). ``read_timeout`` is left unset: it would
    also cut requests waiting on a service and quiet WebSockets."""
    config = Config()
    config.bind = [bind_address(host, port)]
    config.graceful_timeout = graceful_timeout
    config.keep_alive_timeout = idle_timeout
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    config.accesslog = None          # the app writes its own structured access log
    config.errorlog = logging.getLogger("workup.gateway.http")
    config.include_server_header = False
    setattr(config, _GATEWAY, True)
    return config


async def serve_app(app: Any, host: str = "127.0.0.1", port: int = 0, *,
                    shutdown_trigger: Callable[..., Awaitable[None]] | None = None,
                    graceful_timeout: float = 5.0, listen_fd: int | None = None,
                    reuse_port: bool = False,
                    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled (or ``shutdown_trigger`` returns: then finish in-flight requests for
    at most ``graceful_timeout`` seconds). ``task_status.started`` gets the base URL. An address
    that cannot be bound is a one-line :class:`SettingsError`. ``listen_fd``: serve a listening
    socket inherited from a parent instead (``workup gateway --processes``). The gateway app's own
    settings give the slow-client bound (``http_idle_timeout``); any other app gets the default.
    ``reuse_port``: bind with SO_REUSEPORT, so a second gateway may serve the same port (a rolling
    update with host networking: the new one starts before the old one stops)."""
    idle = app.gw.settings.http_idle_timeout if isinstance(app, GatewayApp) else IDLE_TIMEOUT
    config = hypercorn_config(host, port, graceful_timeout=graceful_timeout, idle_timeout=idle)
    own = _reuse_port_socket(host, port) if reuse_port and listen_fd is None else None
    if listen_fd is not None or own is not None:
        config.bind = [f"fd://{listen_fd if own is None else own.fileno()}"]
    sockets, bound_host, bound_port = listen(config, "gateway")
    if own is not None:
        own.detach()   # the fd is hypercorn's socket's now
    url = f"http://{bind_address(bound_host, bound_port)}"

    await worker_serve(wrap_app(app, config.wsgi_max_body_size, None), config, sockets=sockets,
                       shutdown_trigger=shutdown_trigger,
                       task_status=Started(lambda: task_status.started(url)))


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SettingsError(f"gateway cannot listen on {bind_address(host, port)}: {exc.strerror}") from None
    return sock


async def until_signalled(stop: trio.Event, *, hard_stop: trio.CancelScope | None = None,
                          grace: float = 15.0) -> None:
    """Set ``stop`` on the first SIGINT/SIGTERM; cancel ``hard_stop`` on a second signal or
    ``grace`` seconds after the first, so shutting down is always bounded."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if stop.is_set():
                break
            stop.set()
            if hard_stop is not None:
                hard_stop.deadline = min(hard_stop.deadline, trio.current_time() + grace)
    if hard_stop is not None:
        hard_stop.cancel()


def settle_heap() -> None:
    """Once start-up is done: collect, then move every surviving object out of the collector's
    sight (``gc.freeze``). The per-request garbage is then collected without rescanning the
    hundreds of thousands of long-lived objects of the imported drivers (measured: -10..15 %
    CPU per request with a large heap)."""
    gc.collect()
    gc.freeze()


def run_until_stopped(main: Callable[..., Awaitable[None]], *args: Any) -> None:
    """``trio.run(main, *args)`` for a CLI: a :class:`SettingsError` raised anywhere in the task
    tree comes out alone (the CLI prints it as one line, exit code 2)."""
    try:
        trio.run(main, *args)
    except BaseExceptionGroup as group:
        matched, _ = group.split(SettingsError)
        if matched is None:
            raise
        error: BaseException = matched
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        raise error from None
