"""``workup gateway --processes 2``: two gateway processes serve one listening socket (the
gateway scale curve of ``docs/performance.md``); they answer, and SIGTERM stops them all. (Which
child accepts a connection is the kernel's choice, so the test does not insist on both.)"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from ..blackbox._distributed import drop_amqp_names
from ..conftest import service_url

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.services
@pytest.mark.timeout(120)
def test_two_processes_share_the_socket(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}
    env.update(WORKUP_AMQP_URL=service_url("rabbitmq"), WORKUP_AMQP_PREFIX="benchgwprocs",
               WORKUP_JWT_KEY="bench-gateway-processes-" + "k" * 20, WORKUP_LOG_LEVEL="WARNING")
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        parent = subprocess.Popen([sys.executable, "-m", "workup", "gateway", "--port", "0", "--processes", "2",
                                   "--data-dir", str(tmp_path / "data")],
                                  cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not (m := re.search(rb"2 processes on (http://\S+)", log.read_bytes())):
            assert parent.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        url = m.group(1).decode()
        while len(re.findall(rb"WorkUp gateway on", log.read_bytes())) < 2:
            assert parent.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        children = psutil.Process(parent.pid).children()
        assert len(children) == 2
        for _ in range(20):                    # a new connection each time
            with httpx.Client(base_url=url, timeout=5) as http:
                assert http.get("/health").status_code == 200
        assert parent.poll() is None and all(c.is_running() for c in children)
    finally:
        parent.send_signal(signal.SIGTERM)
        code = parent.wait(30)
    assert code == 0, log.read_text()
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children)


@pytest.mark.parametrize("spec, cpus, count", [("1", 8, 1), ("3", 2, 3), ("auto", 4, 4), ("auto", None, 1), (" AUTO ", 2, 2)])
def test_gateway_count(spec: str, cpus: int | None, count: int) -> None:
    from workup.cli.up import gateway_count
    assert gateway_count(spec, cpus) == count


@pytest.mark.parametrize("spec", ["0", "-1", "x", "257", ""])
def test_gateway_count_refuses(spec: str) -> None:
    import click

    from workup.cli.up import gateway_count
    with pytest.raises(click.BadParameter):
        gateway_count(spec, 2)


def test_up_refuses_more_gateways_on_the_in_process_transport(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}
    proc = subprocess.run([sys.executable, "-m", "workup", "up", "--gateway-processes", "2", "--port", "0",
                           "--data-dir", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "needs RabbitMQ" in proc.stderr


@pytest.mark.services
@pytest.mark.timeout(180)
def test_up_with_two_gateway_processes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}
    env.update(WORKUP_AMQP_URL=service_url("rabbitmq"), WORKUP_AMQP_PREFIX="benchupgw", WORKUP_LOG_LEVEL="WARNING")
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "workup", "up", "--gateway-processes", "2", "--port", "0",
                               "--media-port", "0", "--data-dir", str(tmp_path / "data")],
                              cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (m := re.search(rb"API +(http://\S+)/api/v1", log.read_bytes())):
            assert up.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        url = m.group(1).decode()
        gateways = [c for c in psutil.Process(up.pid).children() if "gateway" in c.cmdline()]
        assert len(gateways) == 1
        for _ in range(20):                    # either process may answer; both forward to the services
            with httpx.Client(base_url=url, timeout=10) as http:
                assert http.get("/health").status_code == 200
                r = http.post("/api/v1/users/login", json={"email": "nobody@example.com", "password": "x" * 10})
                assert r.status_code == 401, r.text
    finally:
        up.send_signal(signal.SIGTERM)
        code = up.wait(60)
        drop_amqp_names(env["WORKUP_AMQP_URL"], "benchupgw")      # the services' durable queues
    assert code == 0, log.read_text()
    assert not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in gateways)
