"""`workup bench` (not built yet: see the open issues)."""

import click


@click.command(name="bench")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("'workup bench' is not available yet")
