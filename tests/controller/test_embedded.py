"""The controller and the local autoscaler against a real embedded ``workup up`` (in-process
transport, no broker): ``workup control`` and ``workup scale`` as processes, through the admin
channel in the data directory; freezing is seen through the gateway over real HTTP."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest
import trio

from workup.controller import AdminClient, AdminUnreachable, admin_socket
from workup.runtime.control import ControlReply, control_key, sign
from workup.runtime.instance import HOST

WORKUP = [os.path.join(os.path.dirname(sys.executable), "workup")]
KEY = "embedded-control-test-key"
SERVICES = ("contracts", "jobs", "payments", "users")
_SERVER_VARS = ("WORKUP_AMQP_URL", "WORKUP_REDIS_URL", "WORKUP_USERS_MONGO_URL", "WORKUP_PAYMENTS_POSTGRES_URL",
                "WORKUP_CASSANDRA_HOSTS", "WORKUP_CONTROL_KEY", "WORKUP_CONTROL_KEY_FILE", "WORKUP_DATA_DIR")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SERVER_VARS}
    return {**env, "WORKUP_LOG_LEVEL": "WARNING", **extra}


class Up:
    def __init__(self, proc: subprocess.Popen[str], data: Path, api: str) -> None:
        self.proc, self.data, self.api = proc, data, api
        self.id = f"{HOST}:{proc.pid}"

    def control(self, *args: str, key: str | None = KEY, data: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = _env() if key is None else _env(WORKUP_CONTROL_KEY=key)
        return subprocess.run(WORKUP + ["control", *args, "--data-dir", str(data or self.data)],
                              capture_output=True, text=True, env=env, timeout=60)


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("emb") / "d"
    proc = subprocess.Popen(WORKUP + ["up", "--port", "0", "--media-port", "0", "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env(WORKUP_CONTROL_KEY=KEY))
    try:
        seen = []
        deadline = time.monotonic() + 90
        api = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline() if proc.stdout else ""
            if not line and proc.poll() is not None:
                break
            seen.append(line)
            m = re.search(r"API\s+(http://\S+)/api/v1", line)
            api = m.group(1) if m else api
            if "Press Ctrl-C" in line:
                break
        assert api is not None and admin_socket(data).exists(), "".join(seen)
        yield Up(proc, data, api)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not admin_socket(data).exists()   # removed on the way out


def test_status_of_every_embedded_service_as_a_table_and_json(up: Up) -> None:
    r = up.control("all", "status")
    assert r.returncode == 0, r.stderr
    rows = [line.split() for line in r.stdout.splitlines()[1:]]
    assert sorted(row[0] for row in rows) == list(SERVICES)
    assert all(row[2] == str(up.proc.pid) and row[-1] == up.id for row in rows), r.stdout
    r = up.control("jobs", "status", "--json")
    replies = msgspec.json.decode(r.stdout, type=list[dict[str, object]])
    assert r.returncode == 0 and len(replies) == 1 and replies[0]["service"] == "jobs"
    assert replies[0]["ok"] is True and replies[0]["status"]["frozen"] is False  # type: ignore[index]


def test_freeze_and_start_are_seen_through_the_gateway(up: Up) -> None:
    search = f"{up.api}/api/v1/jobs/search?query=anything"
    assert httpx.get(search, timeout=20).status_code == 200
    r = up.control("jobs", "freeze")
    try:
        assert r.returncode == 0 and f"jobs {up.id} ok" in r.stdout, (r.stdout, r.stderr)
        frozen = httpx.get(search, timeout=20)
        assert frozen.status_code == 503 and frozen.headers["content-type"] == "application/problem+json"
        assert "retry-after" in frozen.headers
        status = up.control("jobs", "status")
        assert status.stdout.splitlines()[1].split()[7] == "yes", status.stdout
        # another service is untouched
        assert httpx.post(f"{up.api}/api/v1/users/login", json={"email": "x@example.com", "password": "nope-nope"},
                          timeout=20).status_code != 503
    finally:
        r = up.control("jobs", "start")
    assert r.returncode == 0 and f"jobs {up.id} ok" in r.stdout
    assert httpx.get(search, timeout=20).status_code == 200


def test_instance_reaches_that_process_only(up: Up) -> None:
    r = up.control("payments", "set-max-threads", "7", "--instance", up.id)
    assert r.returncode == 0 and f"payments {up.id} ok" in r.stdout, r.stderr
    r = up.control("payments", "status")
    assert r.stdout.splitlines()[1].split()[5] == "7", r.stdout
    r = up.control("payments", "set-max-threads", "64", "--instance", f"{HOST}:1")
    assert r.returncode == 1 and "no instance" in r.stderr and r.stdout == ""
    assert up.control("payments", "status").stdout.splitlines()[1].split()[5] == "7"
    assert up.control("payments", "set-max-threads", "64").returncode == 0


def test_a_bad_signature_is_refused_by_each_instance(up: Up) -> None:
    r = up.control("all", "status", key="not-the-key")
    assert r.returncode == 1 and "4 of 4 instances refused the message: bad signature" in r.stderr
    refused = [line for line in r.stdout.splitlines() if "refused: bad signature" in line]
    assert sorted(line.split()[0] for line in refused) == list(SERVICES)
    r = up.control("jobs", "status", "--json", key="not-the-key")
    replies = msgspec.json.decode(r.stdout, type=list[dict[str, object]])
    assert [(x["detail"], "status" in x) for x in replies] == [("refused: bad signature", False)]  # no state
    r = up.control("jobs", "freeze", key="not-the-key")
    assert r.returncode == 1
    assert up.control("jobs", "status").stdout.splitlines()[1].split()[7] == "no"   # nothing applied


def test_a_replayed_or_stale_message_is_refused(up: Up) -> None:
    async def main() -> tuple[list[ControlReply], list[ControlReply], list[ControlReply]]:
        bus = AdminClient(admin_socket(up.data))
        payload = sign(control_key(KEY), "jobs", "status")
        decode = msgspec.json.Decoder(ControlReply).decode
        first = [decode(b) for b in await bus.broadcast_control("jobs", payload, timeout=1.0, expect=1)]
        again = [decode(b) for b in await bus.broadcast_control("jobs", payload, timeout=1.0, expect=1)]
        old = sign(control_key(KEY), "jobs", "status", now=time.time() - 60)
        stale = [decode(b) for b in await bus.broadcast_control("jobs", old, timeout=1.0, expect=1)]
        return first, again, stale

    first, again, stale = trio.run(main)
    assert first[0].ok and first[0].status is not None
    assert again == [ControlReply(ok=False, pid=up.proc.pid, host=HOST, detail="refused: replayed")]
    assert stale[0].detail == "refused: stale (expired)" and stale[0].status is None


def test_what_cannot_apply_embedded_says_why(up: Up) -> None:
    r = up.control("users", "set-processes", "2")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "embedded workup up" in r.stderr and "workup worker" in r.stderr and "WORKUP_AMQP_URL" in r.stderr
    r = up.control("all", "spawn-machine", "--provider", "local")
    assert r.returncode == 2 and "embedded workup up has none" in r.stderr


def test_no_running_up_in_the_data_dir(up: Up, tmp_path: Path) -> None:
    r = up.control("jobs", "status", data=tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "no embedded workup up in" in r.stderr and "WORKUP_AMQP_URL" in r.stderr
    # a socket left behind by a killed workup up: nobody answers, said in one line
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(admin_socket(tmp_path)))
    dead.close()
    r = up.control("jobs", "status", data=tmp_path)
    assert r.returncode == 1 and "no workup up answers on" in r.stderr and "Traceback" not in r.stderr

    async def ask() -> None:
        await AdminClient(admin_socket(tmp_path)).ping()
    with pytest.raises(AdminUnreachable):
        trio.run(ask)


def test_scale_local_dry_run_prints_each_embedded_service(up: Up) -> None:
    r = subprocess.run(WORKUP + ["scale", "--provider", "local", "--dry-run", "--cycles", "1",
                                 "--data-dir", str(up.data)],
                       capture_output=True, text=True, env=_env(WORKUP_CONTROL_KEY=KEY, WORKUP_LOG_LEVEL="INFO"),
                       timeout=60)
    assert r.returncode == 0, r.stderr
    for name in SERVICES:
        assert re.search(rf"{name}: replicas=1 cpu=\S+ queue=\? -> hold 1 .*\[dry run\]", r.stderr), r.stderr
    # a change it would make is logged with why, not applied
    r = subprocess.run(WORKUP + ["scale", "--provider", "local", "--cycles", "1", "--min-processes", "2",
                                 "--services", "jobs", "--data-dir", str(up.data)],
                       capture_output=True, text=True, env=_env(WORKUP_CONTROL_KEY=KEY, WORKUP_LOG_LEVEL="INFO"),
                       timeout=60)
    assert r.returncode == 0 and "jobs: not scaled to 2" in r.stderr and "embedded workup up" in r.stderr, r.stderr
    assert up.control("jobs", "status").stdout.splitlines()[1].split()[4] == "1"


def test_a_garbage_or_vanishing_client_does_not_hurt_workup_up(up: Up) -> None:
    path = str(admin_socket(up.data))
    with socket.socket(socket.AF_UNIX) as s:   # connects and goes away at once
        s.connect(path)
    with socket.socket(socket.AF_UNIX) as s:   # announces 4 GiB
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"\xff\xff\xff\xff")
        answer = s.recv(4096)
    assert b"unreadable request" in answer and b"above" in answer
    with socket.socket(socket.AF_UNIX) as s:   # a well-framed body that is no request
        s.settimeout(10)
        s.connect(path)
        s.sendall(b"\x00\x00\x00\x03abc")
        assert b"unreadable request" in s.recv(4096)
    assert up.control("jobs", "status").returncode == 0 and up.proc.poll() is None
