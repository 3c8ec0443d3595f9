"""The flags of the :class:`workup.settings.Settings` knobs, each declared once here.

A command picks the knobs it takes with :func:`settings_options` and turns what it received into
Settings with :func:`settings_from`. A flag only overrides: one left at its default does not hide
the environment variable, so ``WORKUP_PROCESSES=4 workup worker users`` runs four processes.
"""

from __future__ import annotations

from typing import Any, Callable

import click
import msgspec
from click.core import ParameterSource

from ..settings import BOUNDS, Settings, env_names, load_settings

__all__ = ["server_options", "settings_options", "settings_from"]

F = Callable[..., Any]


class Flag(msgspec.Struct, frozen=True):
    name: str   # the command-line flag; the keyword argument is the Settings field
    help: str   # without the variable, which is appended from env_names()


FLAGS: dict[str, Flag] = {
    "amqp_url": Flag("--amqp-url", "RabbitMQ URL"),
    "redis_url": Flag("--redis-url", "Redis URL for the cache"),
    "users_mongo_url": Flag("--users-mongo-url", "users store"),
    "payments_postgres_url": Flag("--payments-postgres-url", "payments store"),
    "cassandra_hosts": Flag("--cassandra-hosts", "jobs/contracts stores, host:port,..."),
    "data_dir": Flag("--data-dir", "data directory for embedded stores and generated keys"),
    "log_level": Flag("--log-level", "DEBUG, INFO, WARNING, ERROR"),
    "log_format": Flag("--log-format", "text or json (one object a line)"),
    "metrics_port": Flag("--metrics-port", "port of the /metrics listener, 0 = none (worker: the supervisor's; process i uses port + 1 + i)"),
    "host": Flag("--host", "address to listen on"),
    "port": Flag("--port", "gateway port (0 = any free port)"),
    "media_port": Flag("--media-port", "media server port (0 = any free port)"),
    "amqp_prefix": Flag("--prefix", "prefix of queue and exchange names"),
    "request_timeout": Flag("--request-timeout", "seconds a request may wait for its service"),
    "processes": Flag("--processes", "worker processes"),
    "concurrency": Flag("--concurrency", "commands in flight per process, = AMQP prefetch"),
    "grace": Flag("--grace", "seconds in-flight work gets to finish on SIGTERM/freeze"),
    "prometheus_url": Flag("--prometheus-url", "swarm: Prometheus with cAdvisor metrics"),
    "swarm_token": Flag("--swarm-token", "spawn-machine digitalocean: swarm join token"),
    "swarm_manager": Flag("--swarm-manager", "spawn-machine digitalocean: manager host:port"),
    "do_api_url": Flag("--do-api-url", "spawn-machine digitalocean: API base URL"),
}
SERVER_FIELDS = ("amqp_url", "redis_url", "users_mongo_url", "payments_postgres_url", "cassandra_hosts",
                 "data_dir", "log_level", "log_format")
_DEFAULTS = {f.name: f.default for f in msgspec.structs.fields(Settings)}
_TYPES = {f.name: f.type for f in msgspec.structs.fields(Settings)}


def _click_type(field: str) -> click.ParamType | None:
    # ports are range-checked by Settings alone: its message is the one line users know
    bounds = None if field.endswith("port") else BOUNDS.get(field)
    if _TYPES[field] is int:
        return click.IntRange(int(bounds[0]), int(bounds[1])) if bounds else click.INT
    if _TYPES[field] is float:
        return click.FloatRange(*bounds) if bounds else click.FLOAT
    return None


def settings_options(*fields: str) -> Callable[[F], F]:
    """Add the flags of these Settings fields; the command receives them as keyword arguments
    named after the fields (pass them on to :func:`settings_from`)."""
    def decorate(f: F) -> F:
        for field in reversed(fields):
            flag = FLAGS[field]
            default = _DEFAULTS[field]
            f = click.option(flag.name, field, type=_click_type(field), default=default,
                             show_default=default is not None,
                             help=f"{flag.help} ({' / '.join(env_names(field))})")(f)
        return f
    return decorate


server_options = settings_options(*SERVER_FIELDS)


def settings_from(**flags: Any) -> Settings:
    """Settings from the environment with the flags given on the command line on top."""
    ctx = click.get_current_context(silent=True)
    known = set(Settings.__struct_fields__)
    return load_settings({k: v for k, v in flags.items() if k in known and _given(ctx, k)})


def _given(ctx: click.Context | None, name: str) -> bool:
    """False for a flag click filled with its default (the environment must win over it)."""
    return ctx is None or ctx.get_parameter_source(name) is not ParameterSource.DEFAULT
