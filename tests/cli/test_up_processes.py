"""Distributed ``workup up``: the gateway and each service run as processes of their own (sized to
the cores, ``--gateway-processes`` / ``--processes`` override), a flow works through them, and one
SIGTERM stops every one of them within the bound; embedded stays one process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import click
import httpx
import psutil
import pytest

from workup.cli.up import child_env, service_counts
from workup.settings import Settings

from ..blackbox._distributed import Distributed
from ..blackbox._scenarios import marketplace_flow

REPO = Path(__file__).resolve().parents[2]
NAMES = ["users", "jobs", "contracts", "payments"]


@pytest.mark.parametrize("specs, cpus, expected", [
    ((), 2, dict.fromkeys(NAMES, 1)),
    ((), 8, dict.fromkeys(NAMES, 2)),
    (("3",), 2, dict.fromkeys(NAMES, 3)),
    (("jobs=2", "payments=auto"), 8, {"users": 2, "jobs": 2, "contracts": 2, "payments": 2}),
    (("1", "jobs=4"), 2, {"users": 1, "jobs": 4, "contracts": 1, "payments": 1}),
    (("jobs=2", "0"), 8, {}),                      # every service inside workup up
])
def test_service_counts(specs: tuple[str, ...], cpus: int, expected: dict[str, int]) -> None:
    assert service_counts(specs, NAMES, cpus) == expected


@pytest.mark.parametrize("spec", ["jobs=0", "65", "x", "nope=2", "jobs=", "jobs=-1"])
def test_service_counts_refuse(spec: str) -> None:
    with pytest.raises(click.BadParameter):
        service_counts((spec,), NAMES, 2)


def test_child_env_carries_the_settings() -> None:
    settings = Settings(amqp_url="amqp://u:p@127.0.0.1:5672/", amqp_prefix="t1", processes=3, port=9999)
    env = child_env(settings)
    assert env["WORKUP_AMQP_URL"] == "amqp://u:p@127.0.0.1:5672/"
    assert env["WORKUP_AMQP_PREFIX"] == "t1" and env["WORKUP_PROCESSES"] == "3" and env["WORKUP_PORT"] == "9999"
    assert "WORKUP_REDIS_URL" not in env or env["WORKUP_REDIS_URL"] == os.environ.get("WORKUP_REDIS_URL")


@pytest.mark.parametrize("args, message", [
    (["--processes", "jobs=x"], "--processes"),
    (["--processes", "2"], "needs RabbitMQ and Redis"),
])
def test_up_refuses_bad_process_counts(tmp_path: Path, args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}
    proc = subprocess.run([sys.executable, "-m", "workup", "up", *args, "--port", "0", "--data-dir", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def _tree(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _role(p: psutil.Process) -> str:
    try:
        argv = p.cmdline()
    except psutil.Error:
        return ""
    if "workup.runtime.child" in argv:
        return "child"
    for role in ("gateway", "worker"):
        if role in argv:
            return role + (f" {argv[argv.index(role) + 1]}" if role == "worker" else "")
    return ""


@pytest.mark.services
@pytest.mark.timeout(420)
def test_distributed_up_runs_each_role_as_processes() -> None:
    system = Distributed()
    system.begin()
    try:
        running = system.running()
        tree = _tree(running.proc.pid)
        roles = [_role(p) for p in tree]
        cpus = os.cpu_count() or 1
        assert roles.count("gateway") == cpus - 1, roles          # 'auto': one gateway per core, this one too
        assert sorted(r for r in roles if r.startswith("worker")) == sorted(f"worker {n}" for n in NAMES), roles
        assert roles.count("child") == len(NAMES) * max(1, cpus // 4), roles
        with httpx.Client(base_url=running.base_url, timeout=30) as http:
            marketplace_flow(http)                                  # through the processes
        began = time.monotonic()
        code = running.stop(timeout=60)
        took = time.monotonic() - began
    finally:
        system.close()
    assert code == 0, running.log_tail()
    assert took < 60
    assert not [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
