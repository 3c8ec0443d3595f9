"""Flags shared by the role subcommands; each maps onto a :class:`workup.settings.Settings` field."""

from __future__ import annotations

from typing import Any, Callable

import click

from ..settings import Settings, load_settings

__all__ = ["server_options", "settings_from"]

F = Callable[..., Any]

_SERVER_FLAGS = [
    ("--amqp-url", "amqp_url", "RabbitMQ URL (WORKUP_AMQP_URL)"),
    ("--redis-url", "redis_url", "Redis URL for the cache (WORKUP_REDIS_URL)"),
    ("--users-mongo-url", "users_mongo_url", "users store (WORKUP_USERS_MONGO_URL)"),
    ("--payments-postgres-url", "payments_postgres_url", "payments store (WORKUP_PAYMENTS_POSTGRES_URL)"),
    ("--cassandra-hosts", "cassandra_hosts", "jobs/contracts stores, host:port,... (WORKUP_CASSANDRA_HOSTS)"),
    ("--data-dir", "data_dir", "data directory for embedded stores and generated keys (WORKUP_DATA_DIR)"),
    ("--log-level", "log_level", "DEBUG, INFO, WARNING, ERROR (WORKUP_LOG_LEVEL)"),
]


def server_options(f: F) -> F:
    """Add the server-URL flags; the command receives them as keyword arguments."""
    for flag, name, help_ in reversed(_SERVER_FLAGS):
        f = click.option(flag, name, default=None, help=help_)(f)
    return f


def settings_from(**flags: Any) -> Settings:
    """Settings from the environment with the given flags (``None`` = not given) on top."""
    known = set(Settings.__struct_fields__)
    return load_settings({k: v for k, v in flags.items() if k in known})
