"""The controller: signed control messages to every instance of a service, the status table, and
spawning extra machines. The CLI is ``workup control`` (``workup/cli/control.py``)."""

from ._client import ControlUsageError, broadcast, check_arguments
from ._table import render_table, status_rows

__all__ = ["ControlUsageError", "broadcast", "check_arguments", "render_table", "status_rows"]
