"""CLI surface of `workup worker` and `workup control`: clear one-line errors, right exit codes."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from workup.cli import cli

DEAD_BROKER = "amqp://guest:guest@127.0.0.1:1/"


@pytest.mark.parametrize("args, code, message", [
    (["control", "echo", "bogus"], 2, "unknown command 'bogus'"),
    (["control", "echo", "set-max-threads"], 2, "takes 1 argument"),
    (["control", "echo", "set-max-threads", "many"], 2, "whole number"),
    (["control", "echo", "set-logging-level", "LOUD"], 2, "log level"),
    (["control", "echo", "update-command", "Echo", "/nonexistent/x.py"], 2, "cannot read"),
    (["control", "echo", "update-command", "Echo", "notpython.txt"], 2, "needs a .py file"),
    (["control", "Echo!", "status"], 2, "bad service name"),
    (["control", "all", "delete-command", "Echo"], 2, "names one service's command"),
    (["control", "echo", "status", "--amqp-url", DEAD_BROKER], 1, "cannot connect"),
    (["worker", "nosuchservice", "--amqp-url", DEAD_BROKER], 2, "no service named"),
    (["worker", "echo", "--processes", "0", "--amqp-url", DEAD_BROKER], 2, "processes"),
    (["worker", "echo", "--amqp-url", DEAD_BROKER], 1, "cannot connect"),
])
def test_errors_are_one_line(args, code, message, tmp_path, monkeypatch):
    monkeypatch.delenv("WORKUP_AMQP_URL", raising=False)
    monkeypatch.setenv("WORKUP_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("WORKUP_CONTROL_KEY", "a-key")  # the no-key case: test_pure.py test_no_key_is_exit_2_and_no_key_is_made
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_update_command_checks_syntax_before_sending(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKUP_DATA_DIR", str(tmp_path))
    bad = tmp_path / "bad.py"
    bad.write_text("def handler(:\n")
    result = CliRunner().invoke(cli, ["control", "echo", "update-command", "Echo", str(bad),
                                      "--amqp-url", DEAD_BROKER])
    assert result.exit_code == 2 and "bad.py:1" in result.output
