"""`workup media` (not built yet: see the open issues)."""

import click


@click.command(name="media")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("'workup media' is not available yet")
