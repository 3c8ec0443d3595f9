"""``workup worker <service> --processes N``: run a service under the multi-process supervisor."""

from __future__ import annotations

import logging
import os
import sys

import click

from ._errors import BadArgument, exit_on_broker_error
from ._options import server_options, settings_from



@click.command(name="worker")
@click.argument("service")
@click.option("--processes", type=click.IntRange(1, 64), default=1, show_default=True,
              envvar="WORKUP_PROCESSES", help="worker processes (WORKUP_PROCESSES)")
@click.option("--concurrency", type=click.IntRange(1, 10_000), default=64, show_default=True,
              envvar="WORKUP_CONCURRENCY", help="commands in flight per process, = AMQP prefetch (WORKUP_CONCURRENCY)")
@click.option("--grace", type=click.FloatRange(0, 3600), default=30.0, show_default=True,
              envvar="WORKUP_GRACE", help="seconds in-flight work gets to finish on SIGTERM/freeze (WORKUP_GRACE)")
@click.option("--prefix", default="workup", show_default=True, envvar="WORKUP_AMQP_PREFIX",
              help="prefix of queue and exchange names (WORKUP_AMQP_PREFIX)")
@server_options
def command(service: str, processes: int, concurrency: int, grace: float, prefix: str, **flags: object) -> None:
    """Run SERVICE (users, jobs, contracts, payments) as N processes consuming its queue."""
    import trio

    from ..runtime import UnknownService, load_service
    from ..transport.rabbitmq import AmqpTransport
    from ..runtime.child import ChildSpec
    from ..settings import load_control_secret
    from ..runtime.supervisor import Supervisor

    settings = settings_from(**flags)
    try:
        load_service(service)
    except UnknownService as exc:
        raise BadArgument(str(exc)) from None
    if settings.amqp_url is None:
        raise BadArgument("workup worker needs a broker: set WORKUP_AMQP_URL or --amqp-url "
                           "(the embedded system is 'workup up')")
    logging.basicConfig(level=settings.log_level, stream=sys.stderr,
                        format=f"%(asctime)s {service}[%(process)d] %(levelname)s %(name)s: %(message)s")
    with exit_on_broker_error("worker"):
        secret = load_control_secret(settings, create=True)
    assert secret is not None
    spec = ChildSpec(service=service, prefix=prefix, concurrency=concurrency, grace=grace,
                     settings=settings, control_secret=secret, supervisor=os.getpid())
    url = settings.amqp_url
    supervisor = Supervisor(spec, processes,
                            connect=lambda: AmqpTransport.connect(url, prefix=prefix, name=f"{service}-supervisor"))
    with exit_on_broker_error("worker"):
        trio.run(supervisor.run)
