"""``workup gateway``: the HTTP API gateway on RabbitMQ (hypercorn's trio worker)."""

from __future__ import annotations

import logging
import sys

import click

from ..settings import SettingsError
from ._options import server_options, settings_from, settings_options


@click.command(name="gateway")
@settings_options("host", "port", "amqp_prefix", "request_timeout")
@click.option("--graceful-timeout", type=click.FloatRange(0, 300), default=5.0, show_default=True,
              help="seconds in-flight requests get to finish on SIGTERM")
@server_options
def command(graceful_timeout: float, **flags: object) -> None:
    """Serve the REST API and WebSocket notifications, forwarding to the services over RabbitMQ."""
    import trio

    from ..cache import open_cache
    from ..gateway import create_app, jwt_keys_from, serve_app
    from ..gateway import run_until_stopped, settle_heap, until_signalled
    from ..transport import AmqpTransport

    settings = settings_from(**flags)
    amqp_url = settings.amqp_url
    if amqp_url is None:
        raise SettingsError("workup gateway needs a broker: set WORKUP_AMQP_URL or --amqp-url "
                            "(the embedded system is 'workup up')")
    keys = jwt_keys_from(settings, generate=True)
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("workup.gateway")
    if settings.redis_url is None:
        log.warning("no WORKUP_REDIS_URL: reads are not cached and closed accounts are refused "
                    "only by the gateway that closed them")

    async def main() -> None:
        stop = trio.Event()
        with trio.CancelScope() as everything:
            async with trio.open_nursery() as outer:
                outer.start_soon(lambda: until_signalled(stop, hard_stop=everything, grace=graceful_timeout + 5))
                async with AmqpTransport.connect(amqp_url, prefix=settings.amqp_prefix, name="workup-gateway") as transport:
                    app = create_app(settings, transport, open_cache(settings), jwt_keys=keys,
                                     request_timeout=settings.request_timeout)
                    async with trio.open_nursery() as servers:  # returns after the graceful shutdown
                        url = await servers.start(lambda task_status: serve_app(
                            app, settings.host, settings.port, shutdown_trigger=stop.wait,
                            graceful_timeout=graceful_timeout, task_status=task_status))
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
