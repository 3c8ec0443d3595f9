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
    except BaseExceptionGroup as group:  # the same, from tasks of a nursery
        leaves = _leaves(group)
        if not leaves or not all(isinstance(e, (AMQPError, OSError)) for e in leaves):
            raise
        click.echo(f"workup {role}: {leaves[0]}", err=True)
        sys.exit(1)


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out
