"""`workup scale` (not built yet: see the open issues)."""

import click


@click.command(name="scale")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("'workup scale' is not available yet")
