"""The autoscaler beside a real Prometheus and a real cAdvisor (``ops/monitoring/``), before any
Docker engine: cAdvisor watches the host's cgroups, Prometheus scrapes it and `workup scale`'s
own ``/metrics``.

- the scripts bring up a cAdvisor whose CPU counters Prometheus has;
- every decision of a real `workup scale` process (local provider, a real `workup worker echo`
  supervisor on the real broker) is a log line and a ``workup_scale_*`` series Prometheus scraped;
- a Prometheus with no figure for a service holds it ("no CPU figure"), and one that does not
  answer (a closed port) holds the whole cycle in one line: nothing is scaled on missing data.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import trio

from tests.controller._cluster import SECRET, cluster
from tests._prometheus import sample
from tests.scale._monitoring import MONITORING, Prometheus, free_port, monitoring
from tests.scale.test_swarm_provider import _Docker, _Svc
from workup.cli.gateway import stop_processes
from workup.scale import ScalePolicy
from workup.scale._loop import Autoscaler
from workup.scale._swarm import PrometheusCpu, SwarmProvider, policy_from_labels

SCALER_PORT = free_port()
# the first test builds cAdvisor and installs Prometheus on a fresh machine: minutes, once
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory) -> Prometheus:
    with monitoring(tmp_path_factory.mktemp("monitoring"), scrape={"scale": SCALER_PORT}) as p:
        yield p


def test_prometheus_has_cadvisor_cpu(prometheus):
    got = prometheus.wait_for('rate(container_cpu_usage_seconds_total{id="/",job="cadvisor"}[10s])',
                              lambda rows: bool(rows) and rows[0][1] > 0)
    assert got[0][0]["id"] == "/"


async def test_scaler_decisions_are_log_lines_and_scraped_metrics(prometheus, tmp_path):
    async with cluster(tmp_path) as c:
        await c.start_worker("--processes", "1")
        await c.processes(1)
        log = tmp_path / "scale.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "workup", "scale", "--provider", "local", "--services", "echo",
                 "--interval", "1", "--metrics-port", str(SCALER_PORT), "--min-processes", "1",
                 "--max-processes", "2"],
                env={**c.env, "WORKUP_CONTROL_KEY": SECRET}, stdout=out, stderr=out)
        try:
            desired = await trio.to_thread.run_sync(lambda: prometheus.wait_for(
                'workup_scale_desired_replicas{service="echo",job="scale"}', lambda rows: bool(rows)))
            holds = await trio.to_thread.run_sync(lambda: prometheus.wait_for(
                'workup_scale_decisions_total{service="echo",direction="hold",job="scale"}',
                lambda rows: bool(rows) and rows[0][1] >= 2))
        finally:
            stop_processes([proc], timeout=10)
    assert desired[0][1] == 1          # one process, idle: hold at 1
    assert holds[0][1] >= 2
    text = log.read_text()
    assert f"metrics on http://127.0.0.1:{SCALER_PORT}/metrics" in text
    cycles = [line for line in text.splitlines() if "echo: replicas=1 cpu=" in line and "-> hold 1" in line]
    assert len(cycles) >= 2, text      # one line per service per cycle


async def test_prometheus_without_data_for_a_service_holds_it(prometheus):
    web = _Svc("web", 2, {"swarm.autoscaler.minimum": "1"})
    provider = SwarmProvider(_Docker([web]), PrometheusCpu(prometheus.url, window=10))
    scaler = Autoscaler(provider, lambda s: policy_from_labels(s.labels, ScalePolicy(cooldown_down=0, down_window=0)))
    for _ in range(3):
        d = await scaler.cycle()
        assert d["web"].direction == "hold" and d["web"].replicas == 2 and "no CPU figure" in d["web"].reason
    assert web.scaled_to is None
    text = scaler.metrics.render().decode()
    assert sample(text, "workup_scale_desired_replicas", service="web") == 2
    assert sample(text, "workup_scale_decisions_total", service="web", direction="hold") == 3


async def test_unreachable_prometheus_holds_the_cycle_in_one_line(caplog):
    hot = _Svc("hot", 1, {})
    url = f"http://127.0.0.1:{free_port()}"
    scaler = Autoscaler(SwarmProvider(_Docker([hot]), PrometheusCpu(url)),
                        lambda s: policy_from_labels(s.labels, ScalePolicy()))
    with caplog.at_level(logging.INFO, logger="workup.scale"):
        assert await scaler.cycle() == {} and await scaler.cycle() == {}
    lines = [r.getMessage() for r in caplog.records if r.name == "workup.scale"]
    assert len(lines) == 2 and all(f"holding every service this cycle: Prometheus at {url} unavailable" in m
                                   for m in lines), lines
    assert hot.scaled_to is None and "hot" not in scaler.states
    assert sample(scaler.metrics.render().decode(), "workup_scale_unavailable_total", source=f"Prometheus at {url}") == 2


def test_scripts_refuse_bad_input(tmp_path):
    r = subprocess.run([str(MONITORING / "prometheus"), "start", str(tmp_path), "--scrape", "nonsense"],
                       capture_output=True, text=True, timeout=30, env=os.environ)
    assert r.returncode != 0 and "--scrape wants JOB=HOST:PORT, got 'nonsense'" in r.stderr
