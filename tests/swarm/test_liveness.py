"""The workers' health check of the stack, ``workup worker SERVICE --check``, against a real
``workup worker echo`` on the dev broker (no engine needed): no heartbeat is one line and exit 1,
a running supervisor's heartbeat is exit 0, and once the worker is gone the check fails again
when the heartbeat is older than its bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workup._heartbeat import HEARTBEAT_STALE, heartbeat_path


def check(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workup", "worker", "echo", "--check", "--data-dir", str(data_dir)],
                          capture_output=True, text=True, timeout=60)


def test_check_follows_the_supervisor_heartbeat(tmp_path: Path, amqp_url: str) -> None:
    none = check(tmp_path)
    assert none.returncode == 1
    assert none.stderr.strip() == f"worker echo: no heartbeat in {heartbeat_path(str(tmp_path), 'echo')}"
    worker = subprocess.Popen([sys.executable, "-m", "workup", "worker", "echo", "--data-dir", str(tmp_path),
                               "--amqp-url", amqp_url, "--prefix", f"live{os.getpid()}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while (result := check(tmp_path)).returncode != 0:
            assert worker.poll() is None, f"the worker exited: {worker.stderr.read().decode()[-2000:] if worker.stderr else ''}"
            assert time.monotonic() < deadline, f"no fresh heartbeat after 90 s: {result.stderr}"
            time.sleep(1)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)   # as a crash: no clean exit, the file stays
        worker.wait(timeout=30)
    path = heartbeat_path(str(tmp_path), "echo")
    stale = time.time() - HEARTBEAT_STALE - 1
    os.utime(path, (stale, stale))              # the bound passing, without waiting for it
    gone = check(tmp_path)
    assert gone.returncode == 1
    assert gone.stderr.startswith("worker echo: last heartbeat ") and f"(over {HEARTBEAT_STALE:.0f} s)" in gone.stderr
