"""The ``workup`` command: one subcommand per role, each in its own module, imported on use."""

from __future__ import annotations

import importlib
import logging
import os
import sys
import traceback

import click

from ..settings import SettingsError

__all__ = ["main", "cli"]

# subcommand -> module in this package; each module defines a click command named ``command``
_ROLES = {
    "up": "up",
    "gateway": "gateway",
    "worker": "worker",
    "control": "control",
    "scale": "scale",
    "media": "media",
    "bench": "bench",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_ROLES)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = _ROLES.get(name)
        if module is None:
            return None
        command: click.Command = importlib.import_module(f"{__name__}.{module}").command
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="workup")
def cli() -> None:
    """WorkUp: a freelance-marketplace backend of trio services behind one API gateway."""


def main(argv: list[str] | None = None) -> None:
    try:
        cli.main(args=argv, prog_name="workup", standalone_mode=False)
    except SettingsError as exc:
        click.echo(f"workup: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a role that cannot start (server unreachable, ...): one line, no trace
        leaf = _first_leaf(exc)
        if isinstance(leaf, SettingsError):
            click.echo(f"workup: {leaf}", err=True)
            sys.exit(2)
        if isinstance(leaf, KeyboardInterrupt):
            sys.exit(130)
        logging.getLogger("workup").debug("workup failed", exc_info=exc)
        # the raw variable, not Settings: this runs for any failure, a bad setting included
        if os.environ.get("WORKUP_LOG_LEVEL", "").upper() == "DEBUG":
            traceback.print_exception(exc)
            click.echo(f"workup: {_one_line(leaf)}", err=True)
        else:
            click.echo(f"workup: {_one_line(leaf)} (WORKUP_LOG_LEVEL=DEBUG shows the traceback)", err=True)
        sys.exit(1)


def _first_leaf(exc: BaseException) -> BaseException:
    """The first real error inside (possibly nested) exception groups."""
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not _is_cancellation(e)] or list(exc.exceptions)
        exc = inner[0]
    return exc


def _is_cancellation(exc: BaseException) -> bool:
    return type(exc).__name__ == "Cancelled"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}"
