"""``workup up`` on a port already in use stops at once, with one line and exit 2, before any
service has started (a real process; the port is held by the test)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKUP = [os.path.join(os.path.dirname(sys.executable), "workup")]


@pytest.mark.parametrize("flag, other, role", [("--port", "--media-port", "gateway"),
                                               ("--media-port", "--port", "media server")])
def test_a_port_in_use_is_one_line_and_exit_2_before_the_services(flag: str, other: str, role: str,
                                                                   tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORKUP_AMQP_URL", "WORKUP_DATA_DIR", "WORKUP_PORT", "WORKUP_MEDIA_PORT")}
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        started = time.monotonic()
        r = subprocess.run(WORKUP + ["up", flag, str(port), other, "0", "--data-dir", str(tmp_path)],
                           capture_output=True, text=True, env=env, timeout=60)
        took = time.monotonic() - started
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and f"{role} cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "WorkUp is up" not in r.stdout
    # no service opened its store, and nothing waited for them
    assert not list(tmp_path.glob("*.sqlite3")) and not (tmp_path / "admin.sock").exists()
    assert took < 20, took
