"""The benchmark harness never waits for ever on a child process (real child processes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from workup.bench import _harness as H

CHILD = '''
import sys, time
mode = sys.argv[1]
if mode == "silent":
    time.sleep(60)
elif mode == "ready-then-hang":
    print("READY", flush=True)
    time.sleep(60)
elif mode == "reports":
    print("MARK start", flush=True)
    print("MARK end", flush=True)
    print('RESULT {"name": "x", "calls": 3}', flush=True)
'''


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "bench_child.py").write_text(CHILD)
    return {"PYTHONPATH": str(tmp_path)}


def test_run_client_returns_the_result_and_the_marks(child_env: dict[str, str]) -> None:
    marks: list[str] = []
    result = H.run_client("bench_child", "reports", on_mark=marks.append, env=child_env, timeout=30)
    assert result == {"name": "x", "calls": 3}
    assert marks == ["start", "end"]


def test_run_client_stops_a_silent_child_at_its_timeout(child_env: dict[str, str]) -> None:
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="no result within 2 s"):
        H.run_client("bench_child", "silent", env=child_env, timeout=2)
    assert time.monotonic() - t0 < 15


def test_server_that_never_gets_ready_is_stopped(child_env: dict[str, str]) -> None:
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="did not start within 2 s"):
        H.Server("bench_child", "silent", env=child_env, ready_timeout=2)
    assert time.monotonic() - t0 < 15


def test_server_ready_then_stopped_on_exit(child_env: dict[str, str]) -> None:
    with H.Server("bench_child", "ready-then-hang", env=child_env, ready_timeout=30) as server:
        assert server.proc.poll() is None
    assert server.proc.poll() is not None


@pytest.mark.parametrize("value, limit, at_most, met", [
    (1.8, 1.7, False, True), (1.7, 1.7, False, True), (1.69, 1.7, False, False),
    (0.5, 0.6, True, True), (0.6, 0.6, True, True), (0.61, 0.6, True, False),
    (None, 1.0, False, False), (float("nan"), 1.0, True, False),
])
def test_target_verdict(value: float | None, limit: float, at_most: bool, met: bool) -> None:
    assert H.Target(name="t", value=value, limit=limit, at_most=at_most).met is met


def test_judge_exits_1_only_with_check_and_a_miss(capsys: pytest.CaptureFixture[str]) -> None:
    ok, missed = H.Target(name="a", value=2, limit=1), H.Target(name="b", value=0, limit=1)
    H.judge([ok, missed], check=False)                 # reported, exit 0
    assert "MISSED" in capsys.readouterr().out
    H.judge([ok], check=True)
    with pytest.raises(SystemExit) as exc:
        H.judge([ok, missed], check=True)
    assert exc.value.code == 1


def test_bench_server_options_default_to_the_systems_settings(monkeypatch):
    import click
    from workup.bench._harness import AMQP_DEV, server_default
    monkeypatch.delenv("WORKUP_AMQP_URL", raising=False)
    assert server_default("amqp_url", AMQP_DEV)() == AMQP_DEV
    monkeypatch.setenv("WORKUP_AMQP_URL", "amqp://u:p@broker:5672/")
    assert server_default("amqp_url", AMQP_DEV)() == "amqp://u:p@broker:5672/"
    monkeypatch.setenv("WORKUP_AMQP_URL", "http://nope")
    with pytest.raises(click.UsageError, match="amqp_url must start with amqp://"):
        server_default("amqp_url", AMQP_DEV)()
