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
@click.option("--check", is_flag=True,
              help="exit 0 if the worker of SERVICE using this data dir is alive (its heartbeat is "
                   "fresh), else 1 with one line: a container health check")
@server_options
def command(service: str, check: bool, **flags: object) -> None:
    """Run SERVICE (users, jobs, contracts, payments) as N processes consuming its queue."""
    if check:   # before the heavy imports: a health check runs every few seconds
        _check(service, settings_from(**flags).data_dir)

    import msgspec
    import trio

    from ..runtime import UnknownService, load_service
    from ..transport.rabbitmq import AmqpTransport
    from ..runtime.child import ChildSpec
    from ..settings import load_control_secret
    from ..transport.identity import load_identity
    from ..transport.accounts import role_amqp_url
    from ..runtime.metrics import SupervisorMetrics
    from .._heartbeat import heartbeat_path
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
    supervisor.heartbeat = heartbeat_path(settings.data_dir, service)   # for `--check`
    if settings.metrics_port:   # the supervisor's on the port, child i's on port + 1 + i
        SupervisorMetrics(supervisor.status, lambda: sum(slot.restarts for slot in supervisor.slots)).listen(
            settings.host, settings.metrics_port)
    with exit_on_broker_error("worker"):
        trio.run(supervisor.run)


def _check(service: str, data_dir: str) -> None:
    from .._heartbeat import HEARTBEAT_STALE, heartbeat_age, heartbeat_path

    path = heartbeat_path(data_dir, service)
    age = heartbeat_age(path)
    if age is not None and age < HEARTBEAT_STALE:
        raise SystemExit(0)
    click.echo(f"worker {service}: " + (f"no heartbeat in {path}" if age is None else
                                        f"last heartbeat {age:.0f} s ago (over {HEARTBEAT_STALE:.0f} s)"), err=True)
    raise SystemExit(1)
