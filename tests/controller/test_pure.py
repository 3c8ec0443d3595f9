"""Controller argument checks, the status table, and the command list of ``--help`` and of
docs/workers.md read from the one control table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from workup.cli import cli
from workup.controller import ControlUsageError, check_arguments, command_rows, render_table, status_rows
from workup.runtime.control import CONTROL, ControlReply, InstanceStatus

DOCS = Path(__file__).resolve().parents[2] / "docs" / "workers.md"


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
    ("set-max-threads", ["\u00b2"], "whole number"),
    ("add-command", [], "takes 1 argument"),
    ("spawn-machine", [], "unknown command"),   # not a control message: the CLI handles it first
])
def test_bad_arguments(command, args, reason):
    with pytest.raises(ControlUsageError, match=reason):
        check_arguments(command, args)


def test_good_arguments():
    for command, args in [("status", []), ("set-max-threads", ["8"]), ("update-command", ["Echo", "x.py"]),
                          ("set-logging-level", ["warn"]), ("delete-command", ["Echo"])]:
        check_arguments(command, args)


def test_unknown_command_lists_every_command():
    with pytest.raises(ControlUsageError) as caught:
        check_arguments("bogus", [])
    assert str(caught.value).endswith(", ".join(sorted([*CONTROL, "spawn-machine"])))


def _docs_rows():
    """(usage, arguments, applied by, remembered) per command of the docs' control table."""
    text = DOCS.read_text()
    section = text[text.index("## `workup control "):]
    lines = section[:section.index("\n\n", section.index("| command |"))].splitlines()
    table = lines[lines.index(next(line for line in lines if line.startswith("| command |"))) + 2:]
    rows = []
    for line in table:
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        for usage in cells[0].split(" / "):
            rows.append((usage.strip("`"), *cells[1:4]))
    return rows


def test_the_docs_table_matches_the_control_table():
    assert _docs_rows() == [(r.usage, r.arguments, r.applied_by, r.remembered) for r in command_rows()]


def test_help_lists_every_command_with_its_bounds():
    out = CliRunner().invoke(cli, ["control", "--help"], terminal_width=200).output
    listed = out[out.index("Commands:"):]
    for row in command_rows():
        assert f"  {row.usage}  " in listed and row.help() in listed
    assert "N: 1 to 64" in listed


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
