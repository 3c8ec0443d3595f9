"""``workup gateway``: the HTTP API gateway on RabbitMQ (hypercorn's trio worker)."""

from __future__ import annotations

import logging
import sys

import click

from ..settings import SettingsError
from ..logs import configure_logging
from ._options import server_options, settings_from, settings_options


@click.command(name="gateway")
@settings_options("host", "port", "amqp_prefix", "request_timeout")
@click.option("--graceful-timeout", type=click.FloatRange(0, 300), default=5.0, show_default=True,
              help="seconds in-flight requests get to finish on SIGTERM")
@click.option("--reuse-port", is_flag=True,
              help="share the port with another gateway (SO_REUSEPORT): rolling updates with host networking")
@server_options
def command(graceful_timeout: float, reuse_port: bool, **flags: object) -> None:
    """Serve the REST API and WebSocket notifications, forwarding to the services over RabbitMQ."""
    import trio

    from ..cache import open_cache
    from ..gateway import create_app, jwt_keys_from, serve_app
    from ..gateway import run_until_stopped, settle_heap, until_signalled
    from ..transport import AmqpTransport
    from ..transport.accounts import role_amqp_url
    from ..transport.identity import load_identity

    settings = settings_from(**flags)
    if settings.amqp_url is None:
        raise SettingsError("workup gateway needs a broker: set WORKUP_AMQP_URL or --amqp-url "
                            "(the embedded system is 'workup up')")
    amqp_url = role_amqp_url(settings.amqp_url, "gateway", settings.amqp_accounts_dir)
    keys = jwt_keys_from(settings, generate=True)
    identity = load_identity(settings, "gateway", create=True)   # the gateway key only
    configure_logging("gateway", level=settings.log_level, fmt=settings.log_format)
    log = logging.getLogger("workup.gateway")
    if settings.redis_url is None:
        log.warning("no WORKUP_REDIS_URL: reads are not cached and closed accounts are refused "
                    "only by the gateway that closed them")

    async def main() -> None:
        stop = trio.Event()
        with trio.CancelScope() as everything:
            async with trio.open_nursery() as outer:
                outer.start_soon(lambda: until_signalled(stop, hard_stop=everything, grace=graceful_timeout + 5))
                async with AmqpTransport.connect(amqp_url, prefix=settings.amqp_prefix, name="workup-gateway",
                                                 identity=identity) as transport:
                    app = create_app(settings, transport, open_cache(settings), jwt_keys=keys,
                                     request_timeout=settings.request_timeout)
                    async with trio.open_nursery() as servers:  # returns after the graceful shutdown
                        url = await servers.start(lambda task_status: serve_app(
                            app, settings.host, settings.port, shutdown_trigger=stop.wait,
                            graceful_timeout=graceful_timeout, listen_fd=_inherited_fd(flags),
                            reuse_port=reuse_port, task_status=task_status))
                        settle_heap()
                        log.info("gateway on %s (broker %s, prefix %s)", url, _redact(amqp_url), settings.amqp_prefix)
                        click.echo(f"WorkUp gateway on {url}", err=True)
                outer.cancel_scope.cancel()

    run_until_stopped(main)


def _redact(url: str) -> str:
    """The URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


# --- ``--processes N``: N gateway processes serving one listening socket -----------------------
# One process tops out at what hypercorn's trio worker can parse; the parent binds the socket
# once, starts N copies of this command on it (--listen-fd, hidden) and only supervises: the
# kernel hands each connection to whichever child accepts first. Added here, after the command,
# so it stays one self-contained block.

from typing import TYPE_CHECKING  # noqa: E402  (this block stays self-contained)

if TYPE_CHECKING:
    import socket
    import subprocess


def _inherited_fd(params: dict[str, object]) -> int | None:
    """The listening socket a ``--processes`` parent handed down (``--listen-fd``), if any."""
    fd = params.get("listen_fd")
    return fd if isinstance(fd, int) else None


def shared_socket(host: str, port: int, what: str) -> tuple[socket.socket, int, str, int]:
    """Bind and listen on ``host:port`` for processes to come (also ``workup up
    --gateway-processes``, and its check that a port is free): the socket object (keep it
    referenced), its inheritable fd, the bound host and port."""
    import os

    from hypercorn.config import Config

    from .._listening import bind_address, listen

    config = Config()                 # only to bind: the processes configure their servers
    config.bind = [bind_address(host, port)]
    sockets, bound_host, bound_port = listen(config, what)
    sock = sockets.insecure_sockets[0]
    os.set_inheritable(sock.fileno(), True)
    return sock, sock.fileno(), bound_host, bound_port


def stop_processes(children: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM to each child still running, then wait (SIGKILL after ``timeout``)."""
    import signal
    import subprocess
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _serve_processes(count: int, params: dict[str, object]) -> None:
    import signal
    import subprocess
    import time

    settings = settings_from(**params)
    sock, fd, host, port = shared_socket(settings.host, settings.port, "gateway")
    argv = [sys.executable, "-m", "workup", *sys.argv[1:], "--processes", "1", "--listen-fd", str(fd)]
    children = [subprocess.Popen(argv, pass_fds=(fd,)) for _ in range(count)]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:       # no wait here: the loop below watches them end
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"WorkUp gateway: {count} processes on http://{host}:{port}", err=True)
    while any(child.poll() is None for child in children):
        if not stopping and any(child.poll() is not None for child in children):
            click.echo("workup gateway: a gateway process exited; stopping the others", err=True)
            stop(signal.SIGTERM, None)
        time.sleep(0.2)
    codes = [child.returncode for child in children]
    raise SystemExit(0 if stopping and all(c == 0 for c in codes) else max(1, *codes))


def _with_processes(cmd: click.Command) -> click.Command:
    serve_one = cmd.callback
    assert serve_one is not None
    cmd.params += [
        click.Option(["--processes"], type=click.IntRange(1, 256), default=1, show_default=True,
                     help="gateway processes sharing the listening socket (one uses one core)"),
        click.Option(["--listen-fd"], type=int, default=None, hidden=True),
    ]

    def callback(processes: int, **params: object) -> None:
        if processes > 1 and params.get("listen_fd") is None:
            _serve_processes(processes, params)
        else:
            serve_one(**params)

    cmd.callback = callback
    return cmd


command = _with_processes(command)
