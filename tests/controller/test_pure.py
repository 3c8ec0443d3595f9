"""Controller argument checks and the status table."""

from __future__ import annotations

import pytest

from workup.controller import ControlUsageError, check_arguments, render_table, status_rows
from workup.runtime.control import ControlReply, InstanceStatus


@pytest.mark.parametrize("command, args, reason", [
    ("bogus", [], "unknown command"),
    ("set-max-threads", [], "takes 1 argument"),
    ("set-max-threads", ["0"], "between 1 and"),
    ("set-max-threads", ["-3"], "between 1 and"),
    ("set-max-db-connections", ["lots"], "whole number"),
    ("set-processes", ["65"], "between 1 and 64"),
    ("update-command", ["Echo"], "takes 2 arguments"),
    ("set-logging-level", ["LOUD"], "log level"),
    ("freeze", ["now"], "takes 0 arguments"),
])
def test_bad_arguments(command, args, reason):
    with pytest.raises(ControlUsageError, match=reason):
        check_arguments(command, args)


def test_good_arguments():
    for command, args in [("status", []), ("set-max-threads", ["8"]), ("update-command", ["Echo", "x.py"]),
                          ("set-logging-level", ["warn"]), ("delete-command", ["Echo"])]:
        check_arguments(command, args)


def _proc(pid, sup, **kw):
    st = InstanceStatus(service="echo", host="h", pid=pid, supervisor=sup, max_threads=8,
                        enabled=["echo.A", "echo.B"], versions={"echo.A": "v1:x", "echo.B": "v2:abc"}, **kw)
    return ControlReply(ok=True, pid=pid, host="h", status=st)


def test_status_rows_merge_supervisors():
    sup = ControlReply(ok=True, pid=10, host="h", status=InstanceStatus(
        service="echo", host="h", pid=10, role="supervisor", processes=2, children=[12, 11]))
    lonely = ControlReply(ok=True, pid=20, host="h", status=InstanceStatus(
        service="echo", host="h", pid=20, role="supervisor", processes=1))
    rows = status_rows([_proc(12, 10), sup, _proc(11, 10, frozen=True), lonely])
    assert [(r.pid, r.processes, r.role) for r in rows] == [(11, 2, "process"), (12, 2, "process"), (20, 1, "supervisor")]
    table = render_table(rows).splitlines()
    assert table[0].split()[:4] == ["SERVICE", "HOST", "PID", "SUPERVISOR"]
    assert "yes" in table[1] and "B=v2:abc" in table[1] and "all 2" in table[1]
    assert "(no live process)" in table[3]


def test_status_shows_disabled_commands():
    row = _proc(1, None).status
    row.enabled = ["echo.A"]
    assert "1/2 -B" in render_table([row])
