"""`workup worker` (not built yet: see the open issues)."""

import click


@click.command(name="worker")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("'workup worker' is not available yet")
