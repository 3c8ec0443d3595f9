"""The controller's view of the control commands, read from the one table
(``workup/runtime/control.py`` ``CONTROL``): argument checks before sending, and the rows of
``workup control --help`` and of the command table in ``docs/workers.md``."""

from __future__ import annotations

from typing import Sequence

import msgspec

from ..runtime.control import CHILD, CONTROL, SUPERVISOR, ControlCommand, ControlError

__all__ = ["ControlUsageError", "check_arguments", "CommandRow", "command_rows", "SPAWN_MACHINE"]

# not a control message: the controller itself starts the replica (workup/controller/spawn.py)
SPAWN_MACHINE = "spawn-machine"


class ControlUsageError(ValueError):
    """Bad controller arguments; ``str()`` is a one-line message."""


def check_arguments(command: str, args: Sequence[str]) -> None:
    """Validate before anything is sent, so a typo never reaches the instances."""
    spec = CONTROL.get(command)
    if spec is None:
        raise ControlUsageError(
            f"unknown command {command!r}; one of: {', '.join(sorted([*CONTROL, SPAWN_MACHINE]))}")
    try:
        spec.check_cli(args)
    except ControlError as exc:
        raise ControlUsageError(str(exc)) from None


class CommandRow(msgspec.Struct, frozen=True):
    usage: str        # `set-max-threads N`
    arguments: str    # their bounds, "-" for none
    applied_by: str   # who applies it
    remembered: str   # whether the supervisor replays it to children started later
    summary: str      # one line

    def help(self) -> str:
        return self.summary if self.arguments == "-" else f"{self.summary} ({self.arguments})"


def _applied_by(command: ControlCommand) -> str:
    by = command.applied_by
    if by == CHILD | SUPERVISOR:
        return "supervisor and each process"
    return "each process" if by == CHILD else "supervisor"


def command_rows() -> list[CommandRow]:
    """Every command ``workup control`` takes, in the table's order, ``spawn-machine`` last."""
    rows = [CommandRow(c.usage(), c.bounds() or "-", _applied_by(c),
                       "no" if c.sticky is None else f"yes, {c.sticky.describe()}", c.summary)
            for c in CONTROL.values()]
    rows.append(CommandRow(SPAWN_MACHINE, "-", "the controller", "no",
                           "start a full extra replica of the backend (see --provider)"))
    return rows
