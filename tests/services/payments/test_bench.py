"""`workup bench payments` runs end to end (short, SQLite) and reports conserved money."""

from __future__ import annotations

import json

from click.testing import CliRunner

from workup.cli import cli


def test_bench_payments_smoke(tmp_path):
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "payments", "--store", "sqlite", "--duration", "1", "--warmup", "0",
                                      "--in-flight", "4", "--requests", "20", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "money conserved: True" in result.output
    data = json.loads(out.read_text())
    assert data["withdraw"]["calls"] > 0 and data["pay"]["calls"] > 0 and data["audit"]["conserved"]
    assert data["withdraw"]["errors"] == data["pay"]["errors"] == 0


def test_bench_payments_bad_url_is_a_usage_error():
    result = CliRunner().invoke(cli, ["bench", "payments", "--postgres-url", "mysql://x"])
    assert result.exit_code == 2 and "postgresql://" in result.output
