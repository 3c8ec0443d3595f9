"""Small helpers shared by ``workup worker`` and ``workup control``."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator

import click

__all__ = ["BadArgument", "exit_on_broker_error"]


class BadArgument(click.ClickException):
    """A one-line error for bad arguments; exit code 2."""

    exit_code = 2


@contextmanager
def exit_on_broker_error(role: str) -> Iterator[None]:
    """An unreachable broker, refused login or unwritable data dir is one line and exit 1."""
    from ..amqp import AMQPError

    try:
        yield
    except (AMQPError, OSError) as exc:
        click.echo(f"workup {role}: {exc}", err=True)
        sys.exit(1)
