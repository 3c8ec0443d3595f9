"""Controller argument, service and ``--instance`` checks, the status table (refusals included),
the verdict, each command's ``--help``, and the command list of ``--help`` and of docs/workers.md
read from the one control table."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from click.testing import CliRunner

from workup.cli import cli
from workup.controller import (Answer, ControlUsageError, check_arguments, check_command, check_instance,
    check_service, command_rows, render_json, render_lines, render_table, service_choices, status_rows, verdict)
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


# -- services, --instance, the table with refusals, the verdict ---------------------------------
def test_service_choices_are_the_service_packages_and_all():
    assert service_choices() == ["all", "contracts", "echo", "jobs", "payments", "users"]
    for name in service_choices():
        check_service(name)


@pytest.mark.parametrize("name, reason", [
    ("nosuchservice", "unknown service 'nosuchservice'; one of: all, contracts, echo, jobs, payments, users"),
    ("Echo!", "bad service name 'Echo!'; one of: all,"),
])
def test_unknown_service_names_the_choices(name, reason):
    with pytest.raises(ControlUsageError) as caught:
        check_service(name)
    assert str(caught.value).startswith(reason)


@pytest.mark.parametrize("value, canonical", [("h:12", "h:12"), ("h:012", "h:12"), ("a:b:7", "a:b:7"),
                                              ("web-1.example:4242", "web-1.example:4242")])
def test_instance_ids(value, canonical):
    assert check_instance(value) == canonical


@pytest.mark.parametrize("value", ["foo", ":12", "h:", "h:x", "h :1", "h:-1", "h:\u00b2"])
def test_bad_instance_ids(value):
    with pytest.raises(ControlUsageError, match="HOST:PID"):
        check_instance(value)


def _refused(pid, detail="refused: bad signature", service="echo"):
    return Answer(service, ControlReply(ok=False, pid=pid, host="h", detail=detail))


def test_the_table_shows_each_refusal_and_each_id():
    ok = _proc(11, None)
    table = render_table(status_rows([ok]), [Answer("echo", ok), _refused(12), _refused(10)]).splitlines()
    assert table[0].split()[-1] == "ID" and table[1].split()[-1] == "h:11"
    assert table[2].split()[:4] == ["echo", "h", "10", "-"] and table[2].endswith("refused: bad signature")
    assert table[3].split()[:3] == ["echo", "h", "12"]
    # the refusals' columns line up with the instances'
    assert table[2].index("10") == table[1].index("11")


def test_uptime_is_readable():
    rows = [_proc(pid, None, uptime=up).status for pid, up in [(1, 59.9), (2, 61), (3, 7322), (4, 200_000)]]
    assert [line.split()[-2] for line in render_table(rows).splitlines()[1:]] == ["59s", "1m01s", "2h02m", "2d07h"]


def test_lines_and_json_name_the_service_and_the_instance():
    answers = [_refused(12), Answer("echo", ControlReply(ok=True, pid=11, host="h", detail="frozen"))]
    assert render_lines(answers).splitlines() == ["echo h:11 ok frozen", "echo h:12 FAILED refused: bad signature"]
    decoded = msgspec.json.decode(render_json(answers))
    assert decoded[0] == {"service": "echo", "ok": False, "pid": 12, "host": "h", "detail": "refused: bad signature"}
    assert msgspec.json.decode(render_json(answers), type=list[ControlReply])[1].detail == "frozen"


def test_verdict():
    ok = Answer("echo", ControlReply(ok=True, pid=1, host="h", detail="frozen"))
    failed = Answer("echo", ControlReply(ok=False, pid=2, host="h", detail="no pool"))
    assert verdict([ok], timeout=2) == (0, None)
    assert verdict([], timeout=2) == (1, "no instance answered within 2s")
    assert verdict([], timeout=0.5, instance="h:9") == (1, "no instance h:9 answered within 0.5s")
    assert verdict([ok, failed], timeout=2) == (1, "1 of 2 instances answered with a failure")
    code, why = verdict([ok, _refused(3), _refused(4, "refused: stale (expired)")], timeout=2)
    assert code == 1 and why.startswith("2 of 3 instances refused the message: bad signature, stale (expired)")
    assert "WORKUP_CONTROL_KEY" in why
    assert "WORKUP_CONTROL_KEY" not in verdict([_refused(3, "refused: replayed")], timeout=2)[1]


# -- the command line: help, choices, keys (no broker needed) -----------------------------------
def _cli(*args, env=None):
    return CliRunner().invoke(cli, ["control", *args], prog_name="workup", terminal_width=200, env=env)


def test_every_command_has_its_own_help_with_its_arguments():
    for row in command_rows():
        out = _cli("echo", row.name, "--help")
        assert out.exit_code == 0, out.output
        assert out.output.startswith(f"Usage: workup control SERVICE {row.name} [OPTIONS]")
        assert (row.usage.partition(" ")[2] or "[OPTIONS]") in out.output.splitlines()[0]
        if row.arguments != "-":
            assert f"Arguments: {row.arguments}." in out.output
        spawn_only = "--provider" in out.output or "--swarm-token" in out.output or "--region" in out.output
        assert spawn_only == (row.name == "spawn-machine")
        sends = "--instance" in out.output and "--expect" in out.output and "--json" in out.output
        assert sends == (row.name != "spawn-machine")
    group = _cli("--help").output
    assert "--provider" not in group and "--timeout" not in group


def test_help_of_a_command_given_without_its_service():
    out = _cli("set-max-threads", "--help")
    assert out.exit_code == 0 and "Arguments: N: 1 to 10000." in out.output


@pytest.mark.parametrize("args, message", [
    (["nosuchservice", "freeze"], "unknown service 'nosuchservice'; one of: all, contracts, echo, jobs, payments, users"),
    (["echo", "bogus"], "unknown command 'bogus'; one of: add-command, delete-command,"),
    (["echo"], "missing command; one of: add-command,"),
    (["freeze"], "give the service first: workup control SERVICE freeze"),
    (["echo", "status", "--instance", "h"], "--instance needs HOST:PID"),
])
def test_choices_are_one_line_exit_2(args, message, monkeypatch):
    monkeypatch.setenv("WORKUP_AMQP_URL", "amqp://guest:guest@127.0.0.1:1/")
    out = _cli(*args)
    assert out.exit_code == 2 and out.output.count("\n") == 1 and message in out.output, out.output


def test_no_key_is_exit_2_and_no_key_is_made(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKUP_CONTROL_KEY", raising=False)
    monkeypatch.delenv("WORKUP_CONTROL_KEY_FILE", raising=False)
    out = _cli("echo", "status", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/", "--data-dir", str(tmp_path / "d"))
    assert out.exit_code == 2 and out.output.count("\n") == 1, out.output
    assert "WORKUP_CONTROL_KEY" in out.output and "--data-dir" in out.output
    assert not (tmp_path / "d").exists()
    # a data dir that has the workers' key is enough (and the dead broker is then the error)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "control.key").write_text("k\n")
    out = _cli("echo", "status", "--amqp-url", "amqp://guest:guest@127.0.0.1:1/", "--data-dir", str(tmp_path / "d"))
    assert out.exit_code == 1 and "cannot connect" in out.output, out.output


def test_long_help_reads_from_the_table():
    rows = {r.name: r for r in command_rows()}
    assert rows["set-processes"].long_help() == ("The supervisor's number of child processes.\n\n"
                                                 "Arguments: N: 1 to 64.\n\n"
                                                 "Applied by supervisor; remembered for new children: no.")


def test_check_command_knows_spawn_machine():
    check_command("spawn-machine")
    check_command("freeze")
    with pytest.raises(ControlUsageError, match="unknown command 'bogus'; one of: add-command,"):
        check_command("bogus")
