"""`workup control` (not built yet: see the open issues)."""

import click


@click.command(name="control")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("'workup control' is not available yet")
