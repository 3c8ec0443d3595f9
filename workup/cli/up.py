"""`workup up` (not built yet: see the open issues)."""

import click


@click.command(name="up")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("'workup up' is not available yet")
