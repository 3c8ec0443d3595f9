"""The controller's view of the control commands, read from the one table
(``workup/runtime/control.py`` ``CONTROL``): argument, service and ``--instance`` checks before
sending, and the rows of ``workup control --help`` and of the command table in ``docs/workers.md``."""

from __future__ import annotations

import pkgutil
from typing import Sequence

import msgspec

from .. import services

from ..runtime.control import CHILD, CONTROL, SUPERVISOR, ControlCommand, ControlError

__all__ = ["ControlUsageError", "check_command", "check_arguments", "check_service", "check_instance", "service_choices",
           "CommandRow", "command_rows", "SPAWN_MACHINE", "ALL"]

# not a control message: the controller itself starts the replica (workup/controller/spawn.py)
SPAWN_MACHINE = "spawn-machine"


# service `all`: the four services of the marketplace (not echo, a benchmark's)
ALL = "all"


class ControlUsageError(ValueError):
    """Bad controller arguments; ``str()`` is a one-line message."""


def service_choices() -> list[str]:
    """What SERVICE may be: ``all`` and every package of ``workup.services`` (what
    ``workup worker`` can run), found without importing them."""
    return sorted([ALL, *(m.name for m in pkgutil.iter_modules(services.__path__) if m.ispkg)])


def check_service(name: str) -> None:
    choices = service_choices()
    if name not in choices:
        kind = "unknown service" if name.isidentifier() and name.islower() else "bad service name"
        raise ControlUsageError(f"{kind} {name!r}; one of: {', '.join(choices)}")


def check_instance(value: str) -> str:
    """``--instance``: ``HOST:PID`` as the status table's ID column shows it."""
    host, _, pid = value.rpartition(":")
    if not host or any(c.isspace() for c in host) or not (pid.isascii() and pid.isdigit()):
        raise ControlUsageError(f"--instance needs HOST:PID as the status table's ID column shows it, got {value!r}")
    return f"{host}:{int(pid)}"


def check_command(command: str) -> None:
    """A control command or ``spawn-machine``; else the one-line error that names them all."""
    if command not in CONTROL and command != SPAWN_MACHINE:
        raise ControlUsageError(
            f"unknown command {command!r}; one of: {', '.join(sorted([*CONTROL, SPAWN_MACHINE]))}")


def check_arguments(command: str, args: Sequence[str]) -> None:
    """Validate a control message's arguments before anything is sent, so a typo never reaches
    the instances (``spawn-machine`` is not one: the CLI takes it first)."""
    spec = CONTROL.get(command)
    if spec is None:
        check_command(command)
        raise ControlUsageError(f"unknown command {command!r}; {SPAWN_MACHINE} is not a control message")
    try:
        spec.check_cli(args)
    except ControlError as exc:
        raise ControlUsageError(str(exc)) from None


class CommandRow(msgspec.Struct, frozen=True):
    name: str         # `set-max-threads`
    usage: str        # `set-max-threads N`
    arguments: str    # their bounds, "-" for none
    applied_by: str   # who applies it
    remembered: str   # whether the supervisor replays it to children started later
    summary: str      # one line

    def help(self) -> str:
        return self.summary if self.arguments == "-" else f"{self.summary} ({self.arguments})"

    def long_help(self) -> str:
        """The text of ``workup control SERVICE <command> --help``."""
        parts = [f"{self.summary[:1].upper()}{self.summary[1:]}."]
        if self.arguments != "-":
            parts.append(f"Arguments: {self.arguments}.")
        parts.append(f"Applied by {self.applied_by}; remembered for new children: {self.remembered}.")
        return "\n\n".join(parts)


def _applied_by(command: ControlCommand) -> str:
    by = command.applied_by
    if by == CHILD | SUPERVISOR:
        return "supervisor and each process"
    return "each process" if by == CHILD else "supervisor"


def command_rows() -> list[CommandRow]:
    """Every command ``workup control`` takes, in the table's order, ``spawn-machine`` last."""
    rows = [CommandRow(c.name, c.usage(), c.bounds() or "-", _applied_by(c),
                       "no" if c.sticky is None else f"yes, {c.sticky.describe()}", c.summary)
            for c in CONTROL.values()]
    rows.append(CommandRow(SPAWN_MACHINE, SPAWN_MACHINE, "-", "the controller", "no",
                           "start a full extra replica of the backend (options: SERVICE spawn-machine --help)"))
    return rows
