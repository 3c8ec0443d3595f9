"""The controller: signed control messages to every instance of a service (or one), the status table,
spawning extra machines (``workup.controller.spawn``), and the admin channel that carries the same
messages to an embedded ``workup up`` (``_admin.py``). The CLI is ``workup control``
(``workup/cli/control.py``); the commands themselves are declared in ``workup/runtime/control.py``."""

from ._admin import AdminClient, AdminUnreachable, admin_socket, serve_admin
from ._client import ControlBus, broadcast
from ._commands import (ALL, SPAWN_MACHINE, CommandRow, ControlUsageError, check_arguments, check_command,
    check_instance, check_service, command_rows, service_choices)
from ._table import Answer, render_json, render_lines, render_table, status_rows, verdict

__all__ = ["AdminClient", "AdminUnreachable", "admin_socket", "serve_admin",
           "ControlUsageError", "ControlBus", "broadcast", "check_command", "check_arguments", "check_service", "check_instance",
           "service_choices", "CommandRow", "command_rows", "SPAWN_MACHINE", "ALL",
           "Answer", "render_table", "render_lines", "render_json", "status_rows", "verdict"]
