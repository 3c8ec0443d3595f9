"""``workup bench mix`` for real, with ``--rate`` stepping and a soak: a short run against the
embedded ``workup up`` it starts; the report has a step per rate, the rate chart, the soak's
memory, and no failed request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_mix_rate_steps(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}   # embedded
    proc = subprocess.run([sys.executable, "-m", "workup", "bench", "mix", "--accounts", "2", "--jobs", "20",
                           "--rate", "5..10", "--rate-factor", "2", "--duration", "2", "--warmup", "0.5",
                           "--p99-bound", "5000", "--soak", "2", "--soak-share", "0.5", "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert {"mix.json", "mix.md", "mix-timeline.png", "mix-steps.png", "mix-rate.png"} <= {p.name for p in tmp_path.iterdir()}
    report = json.loads((tmp_path / "mix.json").read_text())
    assert report["loop"] == "open" and [s["offered"] for s in report["rate_steps"]] == [5, 10]
    assert report["saturation_rate"] == 10
    # the figures above the steps are the soak's: half the saturation rate
    assert report["soak"] and report["rate"] == 5
    assert report["errors"] == 0 and report["unit_errors"] == {} and report["units_ok"] >= 9
    assert report["rss_mib"] and any("RSS growth" in c["target"] for c in report["checks"])
    assert "## Rate steps" in (tmp_path / "mix.md").read_text()
