"""``ops/docker/engine`` when things go wrong: an engine that cannot start is a failure naming the
step and its log (the Swarm fixture turns it into a failed test, never a skip), and ``down``
cleans up after it; ``up`` and ``down`` refuse a directory the script did not make."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .conftest import ENGINE


def engine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(ENGINE), *args], capture_output=True, text=True, timeout=300)


def test_an_engine_that_cannot_start_fails_naming_the_step_and_its_log(tmp_path: Path) -> None:
    # a socket path longer than a unix socket may be (108 bytes): dockerd exits at once
    state = tmp_path / ("x" * 60) / ("y" * 60)
    up = engine("up", str(state))
    try:
        assert up.returncode == 1, up.stderr
        assert f"engine: FAILED: start: dockerd exited; log: {state}/dockerd.log" in up.stderr
        assert (state / "dockerd.log").read_text().strip()      # the log it names says why
    finally:
        down = engine("down", str(state))
    assert down.returncode == 0, down.stderr
    assert not state.exists()


def test_up_and_down_refuse_a_directory_they_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    up = engine("up", str(tmp_path))
    assert up.returncode == 1
    assert "is not an engine directory made by this script" in up.stderr
    down = engine("down", str(tmp_path))
    assert down.returncode == 1
    assert "not removing it" in down.stderr
    assert (tmp_path / "precious.txt").read_text() == "keep me"
