"""The CPU the bench reports per process group (issue 15's table) and per role of the system's
process tree, read from /proc for real processes that burn a known share of CPU."""

from __future__ import annotations

import subprocess
import sys
import time

from workup.bench.system import CPU_GROUPS, CpuSnapshot, System, cpu_between, cpu_by_group

# burns ~0.3 s of CPU, then sleeps; with "child" it first starts a copy of itself as a `workup
# gateway` look-alike (its command line names the role) that burns too
BURN = """
import subprocess, sys, time
if sys.argv[1:2] == ["child"]:
    kid = subprocess.Popen([sys.executable, "-c", sys.argv[2], "workup", "gateway"])
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
time.sleep(30)
"""


def _spawn_tree() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", BURN, "child", BURN])


def test_roles_split_a_tree_and_groups_count_it() -> None:
    before = cpu_by_group(None)
    root = _spawn_tree()
    try:
        system = System(base_url="http://x", mode="distributed", servers=[], pids=[root.pid], roles=["up"])
        deadline = time.monotonic() + 30          # until both burned their 0.3 s (a loaded machine)
        while min((roles := system.cpu_seconds_by_role()).get(r, 0.0) for r in ("up", "gateway")) < 0.29:
            assert time.monotonic() < deadline, roles
            time.sleep(0.2)
        assert set(roles) == {"up", "gateway"}, roles
        assert roles["up"] >= 0.25 and roles["gateway"] >= 0.25, roles
        groups = cpu_between(before, cpu_by_group(system))
        assert list(groups) == [*CPU_GROUPS, "all", "machine"]
        assert 0.5 <= groups["WorkUp"] < 5, groups        # exactly our tree (started in the window), nothing else's
        assert groups["all"] >= groups["WorkUp"] and groups["machine"] >= 0.5
    finally:
        for proc in System(base_url="", mode="", servers=[], pids=[root.pid])._processes()[::-1]:
            proc.kill()
        root.wait()


def test_a_process_that_ends_in_the_window_does_not_make_a_group_negative() -> None:
    start = CpuSnapshot({1: ("RabbitMQ", 5.0), 2: ("RabbitMQ", 1.0), 3: ("Redis", 0.5)}, machine=10.0)
    end = CpuSnapshot({1: ("RabbitMQ", 5.5), 4: ("RabbitMQ", 0.25), 3: ("Redis", 0.75)}, machine=12.0)
    groups = cpu_between(start, end)          # pid 2 ended, pid 4 started: 0.5 + 0.25
    assert groups["RabbitMQ"] == 0.75 and groups["Redis"] == 0.25 and groups["machine"] == 2.0
    assert groups["all"] == 1.0 and groups["WorkUp"] == 0.0
