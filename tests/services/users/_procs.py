"""Real ``workup worker users`` processes for tests: start, kill hard, stop (by pid only)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import trio

__all__ = ["start_worker", "kill_hard", "stop", "until"]

ROOT = Path(__file__).resolve().parents[2]


def start_worker(amqp_url: str, prefix: str, data_dir: str, processes: int = 1) -> subprocess.Popen:
    env = dict(os.environ, WORKUP_AMQP_URL=amqp_url, WORKUP_DATA_DIR=data_dir, WORKUP_LOG_LEVEL="WARNING",
               WORKUP_CONTROL_KEY="users-kill-test-control-key")
    env.pop("WORKUP_USERS_MONGO_URL", None)
    env.pop("WORKUP_REDIS_URL", None)
    return subprocess.Popen([sys.executable, "-m", "workup", "worker", "users", "--prefix", prefix, "--grace", "1",
                             "--processes", str(processes)],
                            env=env, cwd=ROOT, stdin=subprocess.DEVNULL)


def kill_hard(worker: subprocess.Popen) -> None:
    """SIGKILL the supervisor and its worker children (they run in sessions of their own), by pid:
    the process doing the registration dies mid-command, nothing gets to clean up."""
    procs = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
    assert len(procs) == 2, "expected the supervisor and one worker child"
    for proc in procs:
        proc.send_signal(signal.SIGKILL)
    _gone, alive = psutil.wait_procs(procs, timeout=10)
    assert not alive, alive


def stop(worker: subprocess.Popen) -> None:
    """Graceful stop of a supervisor and its children (SIGTERM, then SIGKILL after 20 s)."""
    try:
        procs = [psutil.Process(worker.pid), *psutil.Process(worker.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    worker.send_signal(signal.SIGTERM)
    _gone, alive = psutil.wait_procs(procs, timeout=20)
    for proc in alive:
        proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(alive, timeout=5)


async def until(predicate, what: str, seconds: float = 60.0) -> None:
    with trio.fail_after(seconds):
        while not await predicate():
            await trio.sleep(0.1)
