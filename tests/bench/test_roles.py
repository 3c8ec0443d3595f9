"""The system's CPU split by process role: how a report says what the gateway alone costs per
request (issue 11: one against two gateway processes, CPU per request unchanged)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
import pytest

from workup.bench import report as R
from workup.bench.loadgen import Stats, Window
from workup.bench.system import System, role_of, start_embedded

from ._reports import make_report


def test_role_of_keeps_the_subcommand_and_its_positionals() -> None:
    assert role_of([sys.executable, "-m", "workup", "worker", "jobs", "--processes", "2"]) == "worker jobs"
    assert role_of([sys.executable, "-m", "workup", "gateway", "--port", "8080"]) == "gateway"
    assert role_of("python -m workup up --port 1") == "up"
    assert role_of([]) == "?"


def test_report_gives_each_roles_cpu_per_request() -> None:
    stats = Stats(start=0.0)
    for i in range(100):
        stats.request("get job", 0.001, None, i / 10)
        stats.unit(0.001, None, i / 10)
    report = R.build("mix", stats, Window(seconds=10.0, cpu_seconds=0.1, units_started=100), loop="closed",
                     users=4, rate=None, unit="request", system_cpu_s=0.3, environment={}, settings={},
                     role_cpu_s={"gateway": 0.1, "worker jobs": 0.2})
    assert report.cpu.system_us_per_request == 3000.0
    assert report.cpu.roles_us_per_request == {"gateway": 1000.0, "worker jobs": 2000.0}
    assert "of which gateway" in R.markdown(report, [])


def test_reports_without_roles_still_load() -> None:
    report = make_report()
    assert report.cpu.roles_us_per_request == {}
    point = R.ScalePoint(gateways=1, workers=1, units_per_s=1.0, p50_ms=1.0, p99_ms=2.0, errors=0,
                         system_us_per_request=10.0)
    assert point.gateway_us_per_request is None


def test_cpu_by_role_sums_the_trees_of_one_role() -> None:
    # a process that burned some CPU and now sleeps: its CPU time holds still between two reads
    # (this test's own process would not: it runs while it measures)
    idle = subprocess.Popen([sys.executable, "-c", "sum(range(3_000_000)); import time; time.sleep(60)"])
    try:
        proc = psutil.Process(idle.pid)
        deadline = time.monotonic() + 20
        last = -1.0
        while time.monotonic() < deadline:
            now = sum(proc.cpu_times()[:2])
            if now == last and now > 0:
                break
            last = now
            time.sleep(0.3)
        system = System(base_url="http://127.0.0.1:1", mode="embedded", servers=[], pids=[idle.pid, idle.pid],
                        roles=["gateway", "gateway"])
        by_role = system.cpu_seconds_by_role()
        assert list(by_role) == ["gateway"]
        assert by_role["gateway"] > 0
        assert system.cpu_seconds() == by_role["gateway"]
    finally:
        idle.kill()
        idle.wait()
    assert System(base_url="x", mode="embedded", servers=[]).cpu_seconds() is None


def test_a_run_report_carries_the_roles_cpu() -> None:
    from workup.bench.runner import LoadOptions, _Measure, _report
    from workup.bench.mix import Mix

    system = System(base_url="http://127.0.0.1:1", mode="distributed", servers=[], pids=[os.getpid()],
                    roles=["gateway"], topology="split (1 gateway, 1 worker processes per service)")
    opts = LoadOptions(url=None, users=1, rate=None, rate_factor=1.5, p99_bound_ms=500, duration=1, warmup=0,
                       max_units=None, max_in_flight=1, out=None, check=False)
    m = _Measure(system, Mix(accounts=1, jobs=1, weights={}, seed=1), opts)
    m._mark("start")
    sum(i * i for i in range(200_000))   # some CPU between the marks
    m._mark("end")
    stats = Stats(start=0.0)
    stats.request("get job", 0.001, None, 0.1)
    stats.unit(0.001, None, 0.1)
    report = _report(m, stats, Window(seconds=1.0, cpu_seconds=0.0, units_started=1), None)
    assert set(report.cpu.roles_us_per_request) == {"gateway"}
    assert report.cpu.roles_us_per_request["gateway"] == report.cpu.system_us_per_request


def test_chart_headroom_lifts_a_flat_line_off_the_frame() -> None:
    assert R.headroom([126.5, 130.3]) == 130.3 * 1.1
    assert R.headroom([]) == 1.1
    assert R.headroom([0.0]) == 1.0
    assert R.headroom([float("nan"), 10.0]) == 10.0 * 1.1


def test_a_process_that_exits_while_starting_is_named_with_its_code_and_log() -> None:
    """The harness's start-up failure says which process exited, with what, and the log's end
    (read before the data directory, where the log is, goes)."""
    with pytest.raises(RuntimeError) as failed:
        with start_embedded(up_args=["--no-such-option"], startup_timeout=60):
            pass
    message = str(failed.value)
    assert "`up` (pid " in message and "exited with 2" in message
    assert "No such option '--no-such-option'" in message
