"""``workup bench flow`` for real: a short run against the embedded ``workup up`` it starts, in
both registration modes and both loops; the report files exist and every step succeeded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workup.bench.flow import STEPS
from workup.bench.system import CPU_GROUPS

REPO = Path(__file__).resolve().parents[2]


def _run_flow(out: Path, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}   # embedded
    proc = subprocess.run([sys.executable, "-m", "workup", "bench", "flow", "--out", str(out), "--check", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert {p.name for p in out.iterdir()} >= {"flow.json", "flow.md", "flow-timeline.png", "flow-steps.png"}
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    report = json.loads((out / "flow.json").read_text())
    assert "| search |" in (out / "flow.md").read_text()
    assert "CPU per completed flow, ms" in (out / "flow.md").read_text()
    return report


def _every_step_succeeded(report: dict, steps: tuple[str, ...], flows: int) -> None:
    assert report["units_ok"] == flows and report["unit_errors"] == {} and report["errors"] == 0
    assert [s["name"] for s in report["steps"]] == list(steps)
    for step in report["steps"]:
        assert step["ok"] == flows and step["errors"] == {}, step
    assert all(c["met"] for c in report["checks"]), report["checks"]
    env = report["environment"]
    assert env["mode"] == "embedded" and env["cpus"] and env["versions"]["trio"]
    assert report["cpu"]["system_s"] > 0 and report["cpu"]["loadgen_us_per_request"] > 0
    groups = report["cpu"]["groups_ms_per_unit"]      # issue 15's table: every group, per flow
    assert list(groups) == [*CPU_GROUPS, "all", "machine"]
    assert groups["WorkUp"] > 0 and groups["all"] >= groups["WorkUp"] and groups["machine"] > 0


@pytest.mark.timeout(300)
def test_flow_closed_loop_registering(tmp_path: Path) -> None:
    report = _run_flow(tmp_path / "closed", "--users", "2", "--max-units", "2", "--duration", "60")
    assert report["loop"] == "closed"
    _every_step_succeeded(report, STEPS, 2)


@pytest.mark.timeout(300)
def test_flow_open_loop_reusing_users(tmp_path: Path) -> None:
    report = _run_flow(tmp_path / "open", "--reuse-users", "--users", "2", "--rate", "2",
                       "--max-units", "3", "--duration", "60")
    assert report["loop"] == "open" and report["rate"] == 2
    _every_step_succeeded(report, STEPS[2:], 3)


@pytest.mark.timeout(300)
def test_flow_logging_in_once(tmp_path: Path) -> None:
    """--login-once: the users log in before the window; the stories run without a login step.
    (Without --check: a few cheap stories are too short a window to judge the load generator's
    CPU share by.)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}   # embedded
    out = tmp_path / "once"
    proc = subprocess.run([sys.executable, "-m", "workup", "bench", "flow", "--out", str(out), "--login-once",
                           "--users", "2", "--max-units", "2", "--duration", "60"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "flow.json").read_text())
    assert report["settings"]["login_once"] is True and report["settings"]["reuse_users"] is True
    assert report["units_ok"] == 2 and report["unit_errors"] == {} and report["errors"] == 0
    assert [s["name"] for s in report["steps"]] == list(STEPS[4:])
    assert all(s["ok"] == 2 for s in report["steps"])
    assert report["cpu"]["groups_ms_per_unit"]["WorkUp"] > 0
