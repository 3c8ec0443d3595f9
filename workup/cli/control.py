"""``workup control <service> <command> [args]``: reconfigure every live instance of a service.

The commands, their arguments and bounds come from the one table ``CONTROL`` in
``workup/runtime/control.py`` (``workup control --help`` lists them), plus ``spawn-machine``
(see --provider). Messages are signed with WORKUP_CONTROL_KEY (or _FILE, or the
data dir's generated key). Exit 0 when every instance that answered applied it, 1 otherwise
(or when none answered), 2 on bad arguments.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..settings import Settings, load_control_secret
from ._errors import BadArgument, exit_on_broker_error
from ._options import server_options, settings_from, settings_options

if TYPE_CHECKING:
    from ..runtime.control import ControlReply


class _ControlCommand(click.Command):
    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # read from the CONTROL table only when asked: `workup --help` must not load the runtime
        from ..controller import command_rows

        with formatter.section("Commands"):
            formatter.write_dl([(row.usage, row.help()) for row in command_rows()])
        super().format_epilog(ctx, formatter)


@click.command(name="control", cls=_ControlCommand, context_settings={"ignore_unknown_options": False})
@click.argument("service")
@click.argument("command_name", metavar="COMMAND")
@click.argument("args", nargs=-1)
@click.option("--timeout", type=click.FloatRange(0.1, 120), default=2.0, show_default=True,
              help="seconds to collect replies")
@click.option("--expect", type=click.IntRange(1, 10_000), default=None,
              help="stop waiting once this many instances answered")
@click.option("--json", "as_json", is_flag=True, help="print the replies as JSON")
@settings_options("amqp_prefix")
@click.option("--provider", type=click.Choice(["local", "digitalocean"]), default="local",
              show_default=True, help="spawn-machine: where")
@click.option("--name", "machine_name", default=None, help="spawn-machine: replica/droplet name")
@click.option("--gateway-port", type=click.IntRange(0, 65535), default=None,
              help="spawn-machine local: also start a gateway on this port (service 'all': default 8081)")
@settings_options("swarm_token", "swarm_manager", "do_api_url")
@click.option("--region", default="lon1", show_default=True)
@click.option("--size", default="s-4vcpu-8gb", show_default=True)
@server_options
def command(service: str, command_name: str, args: tuple[str, ...], timeout: float,
            expect: int | None, as_json: bool, provider: str, machine_name: str | None,
            gateway_port: int | None, region: str, size: str, **flags: object) -> None:
    """Send COMMAND to every instance of SERVICE ('all': users, jobs, contracts and payments)."""
    from ..controller import ControlUsageError, check_arguments
    from ..runtime.control import CONTROL

    settings = settings_from(**flags)
    if command_name == "spawn-machine":
        _spawn(service, args, settings, provider, machine_name, gateway_port, settings.swarm_token,
               settings.swarm_manager, settings.do_api_url, region, size)
        return
    try:
        check_arguments(command_name, args)
    except ControlUsageError as exc:
        raise BadArgument(str(exc)) from None
    if not service.isidentifier() or not service.islower():
        raise BadArgument(f"bad service name {service!r}")
    spec = CONTROL[command_name]
    if service == "all" and spec.names_a_command:
        raise BadArgument(f"{command_name} names one service's command; give that service")
    source = None
    files = [Path(value) for value, arg in zip(args, spec.args) if not arg.on_wire]
    args = tuple(value for value, arg in zip(args, spec.args) if arg.on_wire)
    for path in files:  # update-command's FILE.py: its source travels, not its name
        try:
            source = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadArgument(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        try:
            compile(source, str(path), "exec")
        except SyntaxError as exc:
            raise BadArgument(f"{path}:{exc.lineno}: {exc.msg}") from None
    if settings.amqp_url is None:
        raise BadArgument("workup control needs the broker: set WORKUP_AMQP_URL or --amqp-url")
    import trio

    with exit_on_broker_error("control"):
        secret = load_control_secret(settings, create=True)
        assert secret is not None
        replies = trio.run(_send, settings.amqp_url, settings.amqp_prefix, service, secret, command_name, list(args),
                           source, timeout, expect)
    sys.exit(_report(replies, command_name, as_json, timeout))


async def _send(url: str, prefix: str, service: str, secret: str, command_name: str,
                args: list[str], source: str | None, timeout: float, expect: int | None) -> list[ControlReply]:
    import trio

    from ..controller import broadcast
    from ..controller.spawn import SERVICES
    from ..transport.rabbitmq import AmqpTransport

    services = list(SERVICES) if service == "all" else [service]
    replies: list[ControlReply] = []

    async def one(name: str) -> None:  # a connection each: broadcasts wait out their timeout
        async with AmqpTransport.connect(url, prefix=prefix, name="workup-control") as transport:
            replies.extend(await broadcast(transport, name, secret, command_name, args,
                                           source=source, timeout=timeout, expect=expect))
    async with trio.open_nursery() as n:
        for name in services:
            n.start_soon(one, name)
    return replies


def _report(replies: list[ControlReply], command_name: str, as_json: bool, timeout: float) -> int:
    import msgspec

    from ..controller import render_table, status_rows

    if as_json:
        click.echo(msgspec.json.encode(replies).decode())
    elif command_name == "status":
        if replies:
            click.echo(render_table(status_rows(replies)))
    else:
        for r in sorted(replies, key=lambda r: (r.host, r.pid)):
            click.echo(f"{r.host} {r.pid}: {'ok' if r.ok else 'FAILED'} {r.detail}")
    if not replies:
        click.echo(f"no instance answered within {timeout:g}s", err=True)
        return 1
    return 0 if all(r.ok for r in replies) else 1


def _spawn(service: str, args: tuple[str, ...], settings: Settings, provider: str,
           machine_name: str | None, gateway_port: int | None, swarm_token: str | None,
           swarm_manager: str | None, api_url: str, region: str, size: str) -> None:
    import secrets

    from ..controller.spawn import SERVICES, SpawnError, spawn_digitalocean, spawn_local

    if args:
        raise BadArgument("spawn-machine takes no arguments (use the options)")
    name = machine_name or f"workup-{secrets.token_hex(3)}"
    if provider == "local":
        services = list(SERVICES) if service == "all" else [service]
        if service != "all" and not (service.isidentifier() and service.islower()):
            raise BadArgument(f"bad service name {service!r}")
        if settings.amqp_url is None:
            raise BadArgument("spawn-machine local joins the broker: set WORKUP_AMQP_URL or --amqp-url")
        env = dict(os.environ, WORKUP_AMQP_URL=settings.amqp_url)
        if service == "all" and gateway_port is None:
            gateway_port = 8081  # beside the first replica's default 8080
        started = spawn_local(name, services, data_dir=settings.data_path, env=env,
                              gateway_port=gateway_port)
        for role, pid in started:
            click.echo(f"{name}: {role} pid {pid}")
        return
    token = os.environ.get("DIGITALOCEAN_TOKEN")
    if not token:
        raise BadArgument("spawn-machine digitalocean needs DIGITALOCEAN_TOKEN in the environment")
    if not swarm_token or not swarm_manager:
        raise BadArgument("spawn-machine digitalocean needs --swarm-token and --swarm-manager")
    try:
        droplet = spawn_digitalocean(name, token=token, swarm_token=swarm_token, manager=swarm_manager,
                                     api_url=api_url, region=region, size=size)
    except SpawnError as exc:
        click.echo(f"workup control: {exc}", err=True)
        sys.exit(1)
    click.echo(f"droplet {droplet.get('id')} {droplet.get('name')} {droplet.get('status', '')}".rstrip())
