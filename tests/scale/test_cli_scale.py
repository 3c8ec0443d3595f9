"""`workup scale` as a real process: it says what it does, and holds when it cannot see.

- ``--help`` reads as written (no ``%%`` left from a format string);
- nothing to scale is one clear line, not silence;
- an engine that does not answer (a real closed port) is one line per cycle and no change.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.scale._monitoring import free_port
from tests.transport._amqp_env import AMQP_URL, unique_prefix


def scale(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workup", "scale", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env})


def test_help_has_no_stray_percent_signs():
    r = scale("--help")
    assert r.returncode == 0, r.stderr
    assert "%%" not in r.stdout
    assert "scale up above this CPU % of what a replica may use" in " ".join(r.stdout.split())
    assert "--metrics-port" in r.stdout and "--cpu-window" in r.stdout


def test_local_provider_with_no_supervisors_says_nothing_to_scale(tmp_path):
    r = scale("--provider", "local", "--dry-run", "--cycles", "2", "--interval", "0.5", "--services", "echo",
              WORKUP_AMQP_URL=AMQP_URL, WORKUP_AMQP_PREFIX=unique_prefix(), WORKUP_CONTROL_KEY="k",
              WORKUP_DATA_DIR=str(tmp_path))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert [line for line in lines if "scaling the worker processes of echo every 0.5s between 1 and 4 (dry run" in line]
    nothing = [line for line in lines if "nothing to scale: no `workup worker` supervisor or `workup up` answered for echo" in line]
    assert len(nothing) == 2, r.stderr   # one line per cycle


def test_unreachable_engine_is_one_line_per_cycle_and_no_change():
    closed = free_port()
    r = scale("--provider", "swarm", "--cycles", "3", "--interval", "0.5",
              "--prometheus-url", f"http://127.0.0.1:{free_port()}", DOCKER_HOST=f"tcp://127.0.0.1:{closed}")
    assert r.returncode == 0, r.stderr
    held = [line for line in r.stderr.splitlines() if "holding every service this cycle: the Docker engine unavailable" in line]
    assert len(held) == 3, r.stderr
    assert "Traceback" not in r.stderr and " -> up " not in r.stderr and " -> down " not in r.stderr


def test_bad_flags_are_one_line_and_exit_2():
    r = scale("--cpu-up", "20", "--cpu-down", "30")
    assert r.returncode == 2 and "--cpu-down (30.0) must be below --cpu-up (20.0)" in r.stderr
    assert "Traceback" not in r.stderr
