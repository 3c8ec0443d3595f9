"""The controller: signed control messages to every instance of a service, the status table, and
spawning extra machines (``workup.controller.spawn``). The CLI is ``workup control``
(``workup/cli/control.py``); the commands themselves are declared in ``workup/runtime/control.py``."""

from ._client import broadcast
from ._commands import SPAWN_MACHINE, CommandRow, ControlUsageError, check_arguments, command_rows
from ._table import render_table, status_rows

__all__ = ["ControlUsageError", "broadcast", "check_arguments", "CommandRow", "command_rows", "SPAWN_MACHINE",
           "render_table", "status_rows"]
