"""cAdvisor and Prometheus for the autoscaler's tests, started with the project's own scripts
(``ops/monitoring/cadvisor``, ``ops/monitoring/prometheus``) and queried over Prometheus' HTTP API.

A script that cannot build, install or start its server fails the test with the script's message
(it names the log); every wait is bounded.
"""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "ops" / "monitoring"
# a cold cAdvisor build (Go module proxy) takes a minute or two on this machine; warm, seconds
START_TIMEOUT = 1500

T = TypeVar("T")


def free_port() -> int:
    """A port nothing listens on now (bound and released by us)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _script(name: str, *args: str) -> str:
    r = subprocess.run([str(MONITORING / name), *args], capture_output=True, text=True, timeout=START_TIMEOUT)
    if r.returncode != 0:
        pytest.fail(f"ops/monitoring/{name} {args[0]} failed (exit {r.returncode}): {r.stderr.strip()}")
    return r.stdout.strip()


@contextmanager
def running(name: str, run_dir: Path, *args: str) -> Iterator[None]:
    """``ops/monitoring/<name> start run_dir args...``, stopped on exit."""
    _script(name, "start", str(run_dir), *args)
    try:
        yield
    finally:
        _script(name, "stop", str(run_dir))


class Prometheus:
    def __init__(self, port: int, run_dir: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log = run_dir / "prometheus.log"

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        r.raise_for_status()
        return [(row["metric"], float(row["value"][1])) for row in r.json()["data"]["result"]]

    def wait_for(self, promql: str, accept: Callable[[list[tuple[dict[str, str], float]]], bool],
                 timeout: float = 60.0) -> list[tuple[dict[str, str], float]]:
        """Poll ``promql`` until ``accept(result)``; fails naming the last result and the log."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.query(promql)
            if accept(got):
                return got
            if time.monotonic() > deadline:
                pytest.fail(f"Prometheus: {promql!r} gave {got} after {timeout:.0f} s; log: {self.log}")
            time.sleep(0.5)


@contextmanager
def monitoring(run_dir: Path, *, scrape: dict[str, int], docker: str = "unix:///nonexistent/docker.sock",
               ) -> Iterator[Prometheus]:
    """cAdvisor (watching ``docker``, or only the host's cgroups when nothing answers there) and
    Prometheus scraping it every second, plus the ``scrape`` jobs (name → port on 127.0.0.1)."""
    cadvisor_port, prometheus_port = free_port(), free_port()
    jobs = {"cadvisor": cadvisor_port, **scrape}
    with running("cadvisor", run_dir / "cadvisor", "--port", str(cadvisor_port), "--docker", docker,
                 "--housekeeping", "1s"), \
            running("prometheus", run_dir / "prometheus", "--port", str(prometheus_port), "--interval", "1s",
                    *[arg for job, port in jobs.items() for arg in ("--scrape", f"{job}=127.0.0.1:{port}")]):
        yield Prometheus(prometheus_port, run_dir / "prometheus")
