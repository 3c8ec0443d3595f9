"""The dev Cassandra node runs with the timer slack of ``ops/dev/cassandra/timerslack.py`` (why:
that file's docstring), and the wrapper sets what it says before it runs the command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psutil

WRAPPER = Path(__file__).resolve().parents[2] / "ops" / "dev" / "cassandra" / "timerslack.py"


def test_the_wrapper_runs_its_command_with_the_slack() -> None:
    out = subprocess.run([sys.executable, str(WRAPPER), "500000", "/bin/sh", "-c", "cat /proc/$$/timerslack_ns"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "500000"


def test_the_wrapper_refuses_a_bad_slack_in_one_line() -> None:
    out = subprocess.run([sys.executable, str(WRAPPER), "half", "/bin/true"], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert out.stderr.strip().startswith("usage: timerslack.py")
    assert "Traceback" not in out.stderr


def test_the_dev_node_runs_with_the_slack(cassandra_hosts: str) -> None:
    port = int(cassandra_hosts.split(",")[0].rpartition(":")[2] or 9042)
    listeners = [c.pid for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.laddr.port == port and c.pid]
    assert listeners, f"no local process listens on {port}: these tests expect ops/dev/services' node"
    node = psutil.Process(listeners[0])
    assert any(a.endswith("CassandraDaemon") for a in node.cmdline())
    assert Path(f"/proc/{node.pid}/timerslack_ns").read_text().strip() == "500000"
