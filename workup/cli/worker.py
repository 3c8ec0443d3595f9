"""``workup worker <service> --processes N``: run a service under the multi-process supervisor."""

from __future__ import annotations

import os

import click

from ._errors import BadArgument, exit_on_broker_error
from ..logs import configure_logging
from ._options import server_options, settings_from, settings_options


@click.command(name="worker")
@click.argument("service")
@settings_options("processes", "concurrency", "grace", "amqp_prefix", "host", "metrics_port")
@server_options
def command(service: str, **flags: object) -> None:
    """Run SERVICE (users, jobs, contracts, payments) as N processes consuming its queue."""
    import msgspec
    import trio

    from ..runtime import UnknownService, load_service
    from ..transport.rabbitmq import AmqpTransport
    from ..runtime.child import ChildSpec
    from ..settings import load_control_secret
    from ..transport.identity import load_identity
    from ..transport.accounts import role_amqp_url
    from ..runtime.metrics import SupervisorMetrics
    from ..runtime.supervisor import Supervisor

    settings = settings_from(**flags)
    try:
        load_service(service)
    except UnknownService as exc:
        raise BadArgument(str(exc)) from None
    if settings.amqp_url is None:
        raise BadArgument("workup worker needs a broker: set WORKUP_AMQP_URL or --amqp-url "
                           "(the embedded system is 'workup up')")
    # its own broker account, for the supervisor and (through spec.settings) its children
    url = role_amqp_url(settings.amqp_url, service, settings.amqp_accounts_dir)
    settings = msgspec.structs.replace(settings, amqp_url=url)
    configure_logging("supervisor", level=settings.log_level, fmt=settings.log_format, service=service)
    with exit_on_broker_error("worker"):
        secret = load_control_secret(settings, create=True)
    identity = load_identity(settings, "service", create=True)  # made once, before the children read them
    assert secret is not None
    spec = ChildSpec(service=service, settings=settings, control_secret=secret, supervisor=os.getpid())
    prefix = settings.amqp_prefix
    supervisor = Supervisor(spec, settings.processes,
                            connect=lambda: AmqpTransport.connect(url, prefix=prefix, name=f"{service}-supervisor",
                                                                  identity=identity))
    if settings.metrics_port:   # the supervisor's on the port, child i's on port + 1 + i
        SupervisorMetrics(supervisor.status, lambda: sum(slot.restarts for slot in supervisor.slots)).listen(
            settings.host, settings.metrics_port)
    with exit_on_broker_error("worker"):
        trio.run(supervisor.run)
