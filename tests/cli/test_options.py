"""The shared flags of ``workup/cli/_options.py``: declared once, overriding the environment only
when given."""

from __future__ import annotations

import re
from pathlib import Path

import click
import msgspec
from click.testing import CliRunner

from workup.cli._options import FLAGS, settings_from, settings_options
from workup.settings import Settings

CLI = Path(__file__).resolve().parents[2] / "workup" / "cli"


@click.command()
@settings_options("amqp_prefix", "processes", "grace", "swarm_token")
def probe(**flags: object) -> None:
    click.echo(msgspec.json.encode(settings_from(**flags)).decode())


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, Settings | str]:
    clean = {name: None for name in ("WORKUP_AMQP_PREFIX", "WORKUP_PROCESSES", "WORKUP_GRACE",
                                     "WORKUP_SWARM_TOKEN")}
    result = CliRunner().invoke(probe, list(args), env={**clean, **(env or {})})
    if result.exit_code:
        return result.exit_code, result.output
    return 0, msgspec.json.decode(result.output, type=Settings)


def test_a_flag_left_out_does_not_hide_the_environment():
    code, s = run(env={"WORKUP_AMQP_PREFIX": "from-env", "WORKUP_PROCESSES": "4"})
    assert code == 0 and (s.amqp_prefix, s.processes, s.grace, s.swarm_token) == ("from-env", 4, 30.0, None)


def test_a_given_flag_wins_even_when_it_equals_the_default():
    code, s = run("--prefix", "workup", "--processes", "2", "--swarm-token", "t",
                  env={"WORKUP_AMQP_PREFIX": "from-env", "WORKUP_PROCESSES": "4"})
    assert code == 0 and (s.amqp_prefix, s.processes, s.swarm_token) == ("workup", 2, "t")


def test_flags_check_the_settings_bounds():
    code, output = run("--processes", "65")
    assert code == 2 and "1<=x<=64" in output
    code, output = run("--grace", "-1")
    assert code == 2 and "0<=x<=3600" in output


def test_help_names_the_variable_and_the_default():
    output = CliRunner().invoke(probe, ["--help"]).output
    assert "(WORKUP_AMQP_PREFIX)" in output and "[default: workup]" in output


def test_every_flag_is_a_field():
    assert set(FLAGS) <= set(Settings.__struct_fields__)


def test_no_role_declares_a_knob_of_its_own():
    sources = "\n".join(p.read_text() for p in sorted(CLI.glob("*.py")))
    assert "envvar=" not in sources
    assert len(re.findall(r'"--prefix"', sources)) == 1


def test_outside_a_command_every_value_given_counts(monkeypatch):
    monkeypatch.delenv("WORKUP_AMQP_PREFIX", raising=False)
    monkeypatch.delenv("WORKUP_PROCESSES", raising=False)
    s = settings_from(amqp_prefix="direct", processes=None, not_a_field=1)
    assert s.amqp_prefix == "direct" and s.processes == Settings().processes
