"""``workup bench``: every listed scenario is a module with a command; a missing peer library
names the bench extra instead of a traceback."""

from __future__ import annotations

import importlib

import click
import pytest
from click.testing import CliRunner

from workup.cli import bench


@pytest.mark.parametrize("name", list(bench.SCENARIOS))
def test_every_scenario_has_a_command(name: str) -> None:
    module = importlib.import_module(f"workup.bench.{name}")
    assert isinstance(module.command, click.Command) and module.command.name == name


def test_help_lists_the_scenarios() -> None:
    result = CliRunner().invoke(bench.command, ["--help"])
    assert result.exit_code == 0
    for name in bench.SCENARIOS:
        assert f"  {name} " in result.output


def test_a_missing_peer_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(bench.SCENARIOS, "amqp", ("x", ("aiormq", "no_such_module_for_workup")))
    result = CliRunner().invoke(bench.command, ["amqp", "--help"])
    assert result.exit_code == 1
    assert "needs no_such_module_for_workup from the 'bench' extra" in result.output
    assert "pip install -e '.[bench]'" in result.output
    assert bench.missing_modules(("json", "no_such_module_for_workup")) == ["no_such_module_for_workup"]
