"""``--log-format json|text`` (``workup/logs.py``): the same fields in every role, the request id
and service bound per task; and, end to end, one request id in the gateway's log line, the
worker's log line and the response."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import trio

from tests._prometheus import sample, samples
from workup.logs import bind_request_id, bind_service, configure_logging
from workup.settings import Settings, SettingsError
from workup.testing import env_value

WORKUP = [os.path.join(os.path.dirname(sys.executable), "workup")]
FIELDS = {"time", "level", "role", "service", "instance", "request_id", "logger", "message"}


@pytest.fixture
def restore_root():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_every_field(restore_root):
    out = io.StringIO()
    configure_logging("worker", level="DEBUG", fmt="json", service="users", stream=out)
    log = logging.getLogger("workup.test")
    log.info("plain %s", "line")

    async def handle(rid: str) -> None:
        bind_request_id(rid)
        log.warning("handling")

    async def main() -> None:
        async with trio.open_nursery() as nursery:   # each task its own request id
            nursery.start_soon(handle, "req-1")
            nursery.start_soon(handle, "req-2")
        log.info("after")
    trio.run(main)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(set(line) == FIELDS for line in lines), lines
    first = lines[0]
    assert first["message"] == "plain line" and first["level"] == "INFO" and first["logger"] == "workup.test"
    assert first["role"] == "worker" and first["service"] == "users" and first["request_id"] is None
    assert first["instance"].endswith(f":{os.getpid()}") and first["time"].endswith("Z")
    assert sorted(line["request_id"] for line in lines[1:3]) == ["req-1", "req-2"]
    assert lines[3]["request_id"] is None   # not leaked from the tasks into their parent


def test_without_a_stream_lines_follow_stderr_as_it_is_now(restore_root, monkeypatch):
    # a CLI run in process (click's runner) swaps stderr for a buffer it closes afterwards: the
    # handler it configured must not keep writing to that closed buffer
    borrowed = io.StringIO()
    monkeypatch.setattr(sys, "stderr", borrowed)
    configure_logging("gateway", level="INFO", fmt="text")
    logging.getLogger("workup.test").info("while borrowed")
    borrowed.close()
    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    logging.getLogger("workup.test").info("after")
    assert "after" in now.getvalue() and "Logging error" not in now.getvalue()


def test_bound_service_wins_and_exceptions_are_kept(restore_root):
    out = io.StringIO()
    configure_logging("up", fmt="json", stream=out)

    async def main() -> None:
        bind_service("jobs")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("workup.test").exception("failed")
    trio.run(main)
    line = json.loads(out.getvalue())
    assert line["role"] == "up" and line["service"] == "jobs" and "RuntimeError: boom" in line["exc"]


def test_text_lines_name_the_request(restore_root):
    out = io.StringIO()
    configure_logging("gateway", fmt="text", stream=out)

    async def main() -> None:
        bind_request_id("abc-1")
        logging.getLogger("workup.test").info("hello")
    trio.run(main)
    assert " gateway INFO workup.test: hello [request abc-1]" in out.getvalue()


def test_log_format_is_validated():
    assert Settings().log_format == "text"
    with pytest.raises(SettingsError, match="log_format must be one of text, json"):
        Settings(log_format="xml")
    r = subprocess.run(WORKUP + ["gateway", "--log-format", "xml"], capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")})
    assert r.returncode == 2 and "log_format" in r.stderr and "Traceback" not in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _free_port_pair() -> int:
    """A port free together with the next one: the supervisor listens on it, its child 0 on the next."""
    for _ in range(50):
        port = _free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free ports in a row")


def _wait_for(path, pattern: str, proc: subprocess.Popen, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text()
        if pattern in text:
            return text
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not logged; log: {path.read_text()[-3000:]}")


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_one_request_id_from_gateway_through_broker_to_worker_and_back(tmp_path):
    """Distributed: ``workup gateway`` and ``workup worker users`` on RabbitMQ, both with
    ``--log-format json``; the supervisor's and its child's metrics listeners answer, the child's
    counts the command."""
    prefix = f"obs{uuid.uuid4().hex[:8]}"
    metrics_port = _free_port_pair()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKUP_", "UPLOAD_"))}
    env.update({"WORKUP_AMQP_URL": env_value("WORKUP_TEST_AMQP_URL"), "WORKUP_AMQP_PREFIX": prefix,
                "WORKUP_USERS_MONGO_URL": env_value("WORKUP_TEST_MONGO_URL"), "WORKUP_JWT_KEY": "k" * 32,
                "WORKUP_DATA_DIR": str(tmp_path), "WORKUP_LOG_FORMAT": "json"})
    worker_log, gateway_log = tmp_path / "worker.log", tmp_path / "gateway.log"
    with open(worker_log, "w") as wl, open(gateway_log, "w") as gl:
        worker = subprocess.Popen(WORKUP + ["worker", "users", "--log-level", "DEBUG",
                                            "--metrics-port", str(metrics_port)],
                                  stdout=subprocess.DEVNULL, stderr=wl, env=env)
        gateway = subprocess.Popen(WORKUP + ["gateway", "--port", "0"], stdout=subprocess.DEVNULL, stderr=gl,
                                   env=env)
    try:
        _wait_for(worker_log, "users: consuming", worker)
        banner = _wait_for(gateway_log, "WorkUp gateway on ", gateway)   # the one line meant for people
        url = re.search(r"WorkUp gateway on (http://\S+)", banner).group(1)
        rid = f"obs-{uuid.uuid4().hex[:12]}"
        r = httpx.post(url + "/api/v1/users/freelancers/register", headers={"X-Request-Id": rid}, timeout=30,
                       json={"email": f"obs-{uuid.uuid4().hex[:12]}@example.com", "password": "password-1",
                             "fullName": "O"})
        assert r.status_code == 201, r.text
        assert r.headers["x-request-id"] == rid
        worker_lines = _json_lines(_wait_for(worker_log, rid, worker))
        gateway_lines = _json_lines(_wait_for(gateway_log, rid, gateway))
        mine = [line for line in worker_lines if line["request_id"] == rid]
        assert mine and all(line["role"] == "worker" and line["service"] == "users" for line in mine), mine
        access = [line for line in gateway_lines if line["request_id"] == rid]
        assert access and access[0]["role"] == "gateway" and access[0]["logger"] == "workup.access"
        for line in worker_lines + gateway_lines:   # one shape in every role
            assert FIELDS <= set(line), line
        supervisor = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert sample(supervisor, "workup_supervisor_processes_running", service="users") == 1
        text = httpx.get(f"http://127.0.0.1:{metrics_port + 1}/metrics", timeout=10).text   # child 0
        handled = [line["message"] for line in mine if "answered 201" in line["message"]]
        assert handled, mine
        command = handled[0].split()[1]   # "users: users.X answered 201 in ..."
        assert sample(text, "workup_commands_total", service="users", command=command, status="201") == 1
        assert sample(text, "workup_instance_frozen", service="users") == 0
    finally:
        _stop(gateway, worker)
        trio.run(_drop_topology, env["WORKUP_AMQP_URL"], prefix)


async def _drop_topology(url: str, prefix: str) -> None:
    from workup.transport import AmqpTransport
    async with AmqpTransport.connect(url, prefix=prefix) as transport:
        await transport.delete_topology(["users"])


def test_embedded_up_logs_json_and_serves_each_services_metrics(tmp_path):
    """``workup up`` (in-process transport): one request id in the gateway's access line, the users
    service's line and the response; each service's metrics on its own port."""
    metrics_port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKUP_", "UPLOAD_"))}
    env.update({"WORKUP_LOG_FORMAT": "json", "WORKUP_LOG_LEVEL": "DEBUG"})
    log = tmp_path / "up.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(WORKUP + ["up", "--port", "0", "--media-port", "0", "--data-dir", str(tmp_path / "d"),
                                          "--metrics-port", str(metrics_port)],
                                stdout=out, stderr=out, env=env)
    try:
        banner = _wait_for(log, "Press Ctrl-C", proc)
        api = re.search(r"API\s+(http://\S+)/api/v1", banner).group(1)
        assert f"services on ports {metrics_port}.." in banner
        rid = f"up-{uuid.uuid4().hex[:12]}"
        r = httpx.post(api + "/api/v1/users/freelancers/register", headers={"X-Request-Id": rid}, timeout=30,
                       json={"email": "u@example.com", "password": "password-1", "fullName": "U"})
        assert r.status_code == 201 and r.headers["x-request-id"] == rid
        lines = [line for line in _json_lines(_wait_for(log, "answered 201", proc)) if line["request_id"] == rid]
        assert {line["role"] for line in lines} == {"up"}
        assert any(line["logger"] == "workup.access" for line in lines), lines
        assert any(line["service"] == "users" and "answered 201" in line["message"] for line in lines), lines
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text   # users: the first
        assert sum(v for name, labels, v in samples(text)
                   if name == "workup_commands_total" and labels["service"] == "users" and labels["status"] == "201") == 1
    finally:
        _stop(proc)


def test_a_second_configuration_replaces_the_first_and_keeps_other_handlers(restore_root):
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    first, second = io.StringIO(), io.StringIO()
    configure_logging("gateway", fmt="text", stream=first)
    configure_logging("gateway", fmt="json", stream=second)
    logging.getLogger("workup.test").warning("once")
    assert first.getvalue() == "" and json.loads(second.getvalue())["message"] == "once"
    assert other in logging.getLogger().handlers
