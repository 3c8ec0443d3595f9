"""A worker instance's metrics (``workup/runtime/metrics.py``): per-command counters and latency,
unknown command names folded into one label, the instance's state as gauges, the listener, and
each supervised child's own port."""

from __future__ import annotations

import httpx

from tests._prometheus import sample, samples
from workup.runtime.control import InstanceStatus
from workup.runtime.metrics import UNKNOWN_COMMAND, InstanceMetrics, SupervisorMetrics, child_settings
from workup.settings import Settings


def _status(**kw: object) -> InstanceStatus:
    base = dict(service="demo", host="h", pid=1, max_threads=8, prefetch=8, db_pool_size=4, frozen=False,
                enabled=["demo.A", "demo.B"], in_flight=2, uptime=3.5)
    base.update(kw)
    return InstanceStatus(**base)  # type: ignore[arg-type]


def _metrics(**kw: object) -> InstanceMetrics:
    return InstanceMetrics("demo", lambda: _status(**kw), {"demo.A", "demo.B"}.__contains__)


def test_commands_counted_by_command_and_status_with_latency():
    m = _metrics()
    m.observe("demo.A", 200, 0.003)
    m.observe("demo.A", 200, 0.004)
    m.observe("demo.B", 404, 0.001)
    m.expired()
    text = m.render().decode()
    assert sample(text, "workup_commands_total", service="demo", command="demo.A", status="200") == 2
    assert sample(text, "workup_commands_total", service="demo", command="demo.B", status="404") == 1
    assert sample(text, "workup_command_duration_seconds_count", service="demo", command="demo.A") == 2
    assert sample(text, "workup_command_duration_seconds_bucket", service="demo", command="demo.A", le="0.005") == 2
    assert sample(text, "workup_commands_expired_total", service="demo") == 1


def test_made_up_command_names_share_one_label():
    m = _metrics()
    for i in range(5):
        m.observe(f"demo.Invented{i}", 501, 0.0001)
    text = m.render().decode()
    assert "Invented" not in text
    assert sample(text, "workup_commands_total", service="demo", command=UNKNOWN_COMMAND, status="501") == 5


def test_state_gauges_read_at_scrape_time():
    text = _metrics(frozen=True, prefetch=0).render().decode()
    assert sample(text, "workup_instance_frozen", service="demo") == 1
    assert sample(text, "workup_instance_max_threads", service="demo") == 8
    assert sample(text, "workup_instance_prefetch", service="demo") == 0
    assert sample(text, "workup_instance_in_flight", service="demo") == 2
    assert sample(text, "workup_instance_db_pool_size", service="demo") == 4
    assert sample(text, "workup_instance_enabled_commands", service="demo") == 2
    names = {name for name, _, _ in samples(text)}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info",
            "workup_build_info"} <= names


def test_no_pool_no_pool_gauge():
    text = _metrics(db_pool_size=None).render().decode()
    assert "workup_instance_db_pool_size" not in text


def test_listener_serves_the_registry():
    m = _metrics()
    m.observe("demo.A", 201, 0.01)
    port = m.listen("127.0.0.1", 0)
    assert port
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert r.status_code == 200
    assert sample(r.text, "workup_commands_total", service="demo", command="demo.A", status="201") == 1


def test_a_taken_port_is_not_fatal():
    m = _metrics()
    port = m.listen("127.0.0.1", 0)
    assert port and m.listen("127.0.0.1", port) is None


def test_child_settings_give_each_child_its_own_port_after_the_supervisors():
    assert child_settings(Settings(), 3).metrics_port == 0           # off stays off
    assert child_settings(Settings(metrics_port=9400), 0).metrics_port == 9401
    assert child_settings(Settings(metrics_port=9400), 2).metrics_port == 9403
    assert child_settings(Settings(metrics_port=65535), 2).metrics_port == 65535


def test_supervisor_metrics_read_its_status_and_restarts():
    status = InstanceStatus(service="users", host="h", pid=1, role="supervisor", processes=3, children=[11, 12])
    text = SupervisorMetrics(lambda: status, lambda: 4).render().decode()
    assert sample(text, "workup_supervisor_processes", service="users") == 3
    assert sample(text, "workup_supervisor_processes_running", service="users") == 2
    assert sample(text, "workup_supervisor_restarts_total", service="users") == 4
    build = [labels for name, labels, _ in samples(text) if name == "workup_build_info"]
    assert build[0]["role"] == "supervisor"
