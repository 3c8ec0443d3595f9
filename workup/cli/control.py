"""``workup control SERVICE COMMAND [ARGS] [OPTIONS]``: reconfigure the live instances of a service.

The commands, their arguments and bounds come from the one table ``CONTROL`` in
``workup/runtime/control.py``: ``workup control --help`` lists them, and each has its own
``--help``. ``spawn-machine`` (``workup/controller/spawn.py``) is the one command that is not a
control message; its options are its own. Messages are signed with ``WORKUP_CONTROL_KEY`` (or
``_FILE``, or the ``control.key`` of ``--data-dir``); the controller never makes a key up. They go
over the broker when ``WORKUP_AMQP_URL`` is set, else to the embedded ``workup up`` of
``--data-dir`` through its admin channel (``workup/controller/_admin.py``).
Exit 0 when every instance that answered applied it, 1 otherwise (a refusal, a failure, or no
answer), 2 on bad arguments, an unknown service or command, or no key.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..settings import Settings, load_control_secret
from ..transport.accounts import role_amqp_url
from ._errors import BadArgument, exit_on_broker_error
from ._options import settings_from, settings_options

if TYPE_CHECKING:
    from ..controller import Answer, CommandRow, ControlBus
    from ..runtime.control import ControlCommand

_SPAWN_MACHINE = "spawn-machine"   # = controller.SPAWN_MACHINE, without importing the runtime here


def _rows() -> dict[str, CommandRow]:
    # read from the CONTROL table only when asked: `workup --help` must not load the runtime
    from ..controller import command_rows

    return {row.name: row for row in command_rows()}


class _Control(click.Group):
    """SERVICE comes first, then a command from the table; both are checked with one-line errors
    that name the choices."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_rows())

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == _SPAWN_MACHINE:
            return spawn_machine
        from ..runtime.control import CONTROL

        spec = CONTROL.get(name)
        return None if spec is None else _message_command(spec, _rows()[name])

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0]
        command = self.get_command(ctx, name)
        if command is not None:
            return name, command, args[1:]
        misplaced = self._misplaced(ctx)
        if misplaced is not None:
            if name in ctx.help_option_names:  # `workup control freeze --help`
                misplaced.make_context(misplaced.name or "", [name], parent=ctx)  # prints it, exits
            raise _service_first(misplaced.name or "")
        if name.startswith("-"):
            return super().resolve_command(ctx, args)  # an option of the group: click's own handling
        from ..controller import ControlUsageError, check_command

        try:
            check_command(name)
        except ControlUsageError as exc:
            raise BadArgument(str(exc)) from None
        raise AssertionError(name)  # a known name has a command

    def _misplaced(self, ctx: click.Context) -> click.Command | None:
        """The command given where SERVICE goes, if so (``workup control status``)."""
        service = ctx.params.get("service")
        return self.get_command(ctx, service) if isinstance(service, str) else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(row.usage, row.help()) for row in _rows().values()])


def _service_first(command: str) -> BadArgument:
    from ..controller import service_choices

    return BadArgument(f"give the service first: workup control SERVICE {command} ...; "
                       f"SERVICE one of: {', '.join(service_choices())}")


@click.group(name="control", cls=_Control, invoke_without_command=True, options_metavar="",
             subcommand_metavar="COMMAND [ARGS]... [OPTIONS]",
             epilog="Each command has its own --help: workup control SERVICE COMMAND --help.")
@click.argument("service")
@click.pass_context
def command(ctx: click.Context, service: str) -> None:
    """Send COMMAND to the instances of SERVICE ('all': users, jobs, contracts and payments), or
    to one of them with --instance: over the broker (WORKUP_AMQP_URL), else to the embedded
    workup up of --data-dir. The key is WORKUP_CONTROL_KEY (or WORKUP_CONTROL_KEY_FILE),
    else the control.key of --data-dir; without one the controller stops (exit 2). Exit 0 when
    every instance that answered applied it, 1 on a refusal, a failure or no answer, 2 on bad
    arguments."""
    from ..controller import ControlUsageError, check_service

    if ctx.invoked_subcommand is None:
        group = ctx.command
        assert isinstance(group, _Control)
        misplaced = group._misplaced(ctx)
        if misplaced is not None:
            raise _service_first(misplaced.name or "")
        raise BadArgument(f"missing command; one of: {', '.join(sorted(_rows()))}")
    try:
        check_service(service)
    except ControlUsageError as exc:
        raise BadArgument(str(exc)) from None


def _check_instance(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from ..controller import ControlUsageError, check_instance

    if value is None:
        return None
    try:
        return check_instance(value)
    except ControlUsageError as exc:
        raise BadArgument(str(exc)) from None


class _Args(click.Argument):
    """The command's positional arguments, checked by the table (its messages say "takes N
    arguments"); the usage line shows their names from the table."""

    def __init__(self, *args: Any, usage: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._usage = usage

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [self._usage] if self._usage else []


def _message_command(spec: ControlCommand, row: CommandRow) -> click.Command:
    @click.command(name=spec.name, help=row.long_help(), short_help=row.help(),
                   context_settings={"ignore_unknown_options": False})
    @click.argument("args", nargs=-1, cls=_Args, usage=" ".join(a.metavar for a in spec.args))
    @click.option("--instance", metavar="ID", default=None, callback=_check_instance,
                  help="only this instance: HOST:PID as the ID column of status shows it (a process, "
                       "or a supervisor and its processes)")
    @click.option("--timeout", type=click.FloatRange(0.1, 120), default=2.0, show_default=True,
                  help="seconds to collect replies")
    @click.option("--expect", type=click.IntRange(1, 10_000), default=None,
                  help="stop waiting once this many instances answered")
    @click.option("--json", "as_json", is_flag=True, help="print the replies as JSON, each with its service")
    @settings_options("amqp_url", "amqp_prefix", "data_dir")
    def run(args: tuple[str, ...], instance: str | None, timeout: float, expect: int | None,
            as_json: bool, **flags: object) -> None:
        _send_message(spec, _parent_service(), args, instance, timeout, expect, as_json, settings_from(**flags))
    return run


def _parent_service() -> str:
    ctx = click.get_current_context()
    assert ctx.parent is not None
    service: str = ctx.parent.params["service"]
    return service


def _send_message(spec: ControlCommand, service: str, args: tuple[str, ...], instance: str | None,
                  timeout: float, expect: int | None, as_json: bool, settings: Settings) -> None:
    from ..controller import ALL, ControlUsageError, check_arguments

    try:
        check_arguments(spec.name, args)
    except ControlUsageError as exc:
        raise BadArgument(str(exc)) from None
    if service == ALL and spec.names_a_command:
        raise BadArgument(f"{spec.name} names one service's command; give that service")
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
        _check_embedded(spec, settings)
    import trio

    with exit_on_broker_error("control"):
        # never create one: a key made up here would only make every instance refuse
        secret = load_control_secret(settings, create=False)
        if not secret:
            raise BadArgument(f"no control key: set WORKUP_CONTROL_KEY (or WORKUP_CONTROL_KEY_FILE), or --data-dir "
                              f"to the workers' data directory (no {settings.data_path / 'control.key'})")
        answers = trio.run(_send, settings, service, secret, spec.name, list(args),
                           source, timeout, expect, instance)
    sys.exit(_report(answers, spec.name, as_json, timeout, instance))


def _check_embedded(spec: ControlCommand, settings: Settings) -> None:
    """No broker: the embedded ``workup up`` of --data-dir, through its admin channel."""
    from ..controller import admin_socket
    from ..runtime.control import SUPERVISOR

    if spec.applied_by == SUPERVISOR:
        raise BadArgument(f"{spec.name} is for a `workup worker` supervisor: an embedded workup up runs every service "
                          f"inside its one process, on an in-process transport that no other process can join; "
                          f"run the services with `workup worker` on RabbitMQ (WORKUP_AMQP_URL) to change processes")
    if not admin_socket(settings.data_path).exists():
        raise BadArgument(f"no broker and no embedded workup up in {settings.data_path} (no "
                          f"{admin_socket(settings.data_path).name}): set WORKUP_AMQP_URL or --amqp-url, "
                          f"or --data-dir to the data directory of a running workup up")


async def _send(settings: Settings, service: str, secret: str, command_name: str, args: list[str],
                source: str | None, timeout: float, expect: int | None, instance: str | None) -> list[Answer]:
    import trio

    from ..controller import ALL, AdminClient, Answer, admin_socket, broadcast
    from ..controller.spawn import SERVICES
    from ..transport.rabbitmq import AmqpTransport

    services = list(SERVICES) if service == ALL else [service]
    answers: list[Answer] = []

    async def ask(bus: ControlBus, name: str) -> None:
        replies = await broadcast(bus, name, secret, command_name, args, source=source,
                                  timeout=timeout, expect=expect, instance=instance)
        answers.extend(Answer(name, r) for r in replies)

    async def one(name: str) -> None:  # a connection each: broadcasts wait out their timeout
        if settings.amqp_url is None:   # the embedded workup up's socket, one connection per request
            await ask(AdminClient(admin_socket(settings.data_path)), name)
            return
        # only the controller's account may publish control messages
        url = role_amqp_url(settings.amqp_url, "controller", settings.amqp_accounts_dir)
        async with AmqpTransport.connect(url, prefix=settings.amqp_prefix, name="workup-control") as transport:
            await ask(transport, name)
    async with trio.open_nursery() as n:
        for name in services:
            n.start_soon(one, name)
    return answers


def _report(answers: list[Answer], command_name: str, as_json: bool, timeout: float, instance: str | None) -> int:
    from ..controller import render_json, render_lines, render_table, status_rows, verdict

    if as_json:
        click.echo(render_json(answers))
    elif command_name == "status":
        if answers:
            click.echo(render_table(status_rows([a.reply for a in answers]), answers))
    elif answers:
        click.echo(render_lines(answers))
    code, why = verdict(answers, timeout=timeout, instance=instance)
    if why is not None:
        click.echo(f"workup control: {why}", err=True)
    return code


@click.command(name=_SPAWN_MACHINE)
@click.option("--provider", type=click.Choice(["local", "digitalocean"]), default="local",
              show_default=True, help="where the replica runs")
@click.option("--name", "machine_name", default=None, help="replica/droplet name (default: workup-<random>)")
@click.option("--gateway-port", type=click.IntRange(0, 65535), default=None,
              help="local: also start a gateway on this port (service 'all': default 8081)")
@settings_options("swarm_token", "swarm_manager", "do_api_url")
@click.option("--region", default="lon1", show_default=True, help="digitalocean: droplet region")
@click.option("--size", default="s-4vcpu-8gb", show_default=True, help="digitalocean: droplet size")
@settings_options("amqp_url", "amqp_prefix", "data_dir")
def spawn_machine(provider: str, machine_name: str | None, gateway_port: int | None, region: str, size: str,
                  **flags: object) -> None:
    """Start a full extra replica of the backend: with --provider local, `workup worker` for
    SERVICE (with 'all': the four services and a gateway) as detached processes on this machine
    joined to the same broker, logs and pids in <data dir>/replicas/<name>/; with --provider
    digitalocean, a droplet (token DIGITALOCEAN_TOKEN) whose cloud-init joins the Swarm."""
    settings = settings_from(**flags)
    _spawn(_parent_service(), settings, provider, machine_name, gateway_port, region, size)


def _spawn(service: str, settings: Settings, provider: str, machine_name: str | None,
           gateway_port: int | None, region: str, size: str) -> None:
    import secrets

    from ..controller import ALL
    from ..controller.spawn import SERVICES, SpawnError, spawn_digitalocean, spawn_local

    name = machine_name or f"workup-{secrets.token_hex(3)}"
    if provider == "local":
        services = list(SERVICES) if service == ALL else [service]
        if settings.amqp_url is None:
            raise BadArgument("spawn-machine local joins the broker: set WORKUP_AMQP_URL or --amqp-url (an embedded "
                              "workup up has none: its in-process transport reaches no other process)")
        env = dict(os.environ, WORKUP_AMQP_URL=settings.amqp_url, WORKUP_AMQP_PREFIX=settings.amqp_prefix)
        if service == ALL and gateway_port is None:
            gateway_port = 8081  # beside the first replica's default 8080
        started = spawn_local(name, services, data_dir=settings.data_path, env=env,
                              gateway_port=gateway_port)
        for role, pid in started:
            click.echo(f"{name}: {role} pid {pid}")
        return
    token = os.environ.get("DIGITALOCEAN_TOKEN")
    if not token:
        raise BadArgument("spawn-machine digitalocean needs DIGITALOCEAN_TOKEN in the environment")
    if not settings.swarm_token or not settings.swarm_manager:
        raise BadArgument("spawn-machine digitalocean needs --swarm-token and --swarm-manager")
    try:
        droplet = spawn_digitalocean(name, token=token, swarm_token=settings.swarm_token,
                                     manager=settings.swarm_manager, api_url=settings.do_api_url,
                                     region=region, size=size)
    except SpawnError as exc:
        click.echo(f"workup control: {exc}", err=True)
        sys.exit(1)
    click.echo(f"droplet {droplet.get('id')} {droplet.get('name')} {droplet.get('status', '')}".rstrip())
