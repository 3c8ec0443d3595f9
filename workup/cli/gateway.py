"""`workup gateway` (not built yet: see the open issues)."""

import click


@click.command(name="gateway")
def command() -> None:
    """Not available yet."""
    raise click.UsageError("'workup gateway' is not available yet")
