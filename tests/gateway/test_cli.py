"""``workup up`` and ``workup gateway`` as real processes."""

import os
import re
import signal
import subprocess
import sys
import time

import httpx

from workup.testing import env_value

WORKUP = [os.path.join(os.path.dirname(sys.executable), "workup")]


def _read_until(proc, pattern, timeout=60):
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        m = re.search(pattern, line)
        if m:
            return m, seen
    raise AssertionError(f"{pattern!r} not printed; output: {''.join(seen)}")


def _stop(proc, sig=signal.SIGTERM, timeout=30):
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_serves_everything_and_stops_on_sigterm(tmp_path):
    env = {**os.environ, "WORKUP_ADMIN_EMAIL": "root@example.com", "WORKUP_ADMIN_PASSWORD": "root-password-1",
           "WORKUP_LOG_LEVEL": "WARNING"}
    for var in ("WORKUP_AMQP_URL", "WORKUP_REDIS_URL", "WORKUP_JWT_KEY", "WORKUP_USERS_MONGO_URL",
                "WORKUP_PAYMENTS_POSTGRES_URL", "WORKUP_CASSANDRA_HOSTS", "UPLOAD_USER", "UPLOAD_PASSWORD"):
        env.pop(var, None)
    proc = subprocess.Popen(WORKUP + ["up", "--port", "0", "--media-port", "0", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        api = _read_until(proc, r"API\s+(http://\S+)/api/v1")[0].group(1)
        media, _ = _read_until(proc, r"media\s+(http://\S+)\s+\(upload user '(\w+)', password '([^']+)'")
        _read_until(proc, "Press Ctrl-C")
        with httpx.Client(base_url=api, timeout=20) as http:
            assert http.get("/health").json() == {"status": "ok"}
            r = http.post("/api/v1/users/login", json={"email": "root@example.com", "password": "root-password-1"})
            assert r.status_code == 200 and r.json()["userType"] == "ADMIN"
        r = httpx.get(media.group(1) + "/describe", timeout=10)
        assert r.status_code == 200 and r.json()["success"] is True
        r = httpx.post(media.group(1) + "/upload/icons", auth=(media.group(2), "wrong"), timeout=10,
                       files={"resource": ("a.png", b"x")}, data={"filename": "a"})
        assert r.status_code == 401
        assert (tmp_path / "jwt.key").exists() and (tmp_path / "upload.password").exists()
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_up_keeps_its_generated_keys(tmp_path):
    (tmp_path / "jwt.key").write_text("a-stable-signing-key-of-enough-length\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKUP_", "UPLOAD_"))}
    proc = subprocess.Popen(WORKUP + ["up", "--port", "0", "--media-port", "0", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        api = _read_until(proc, r"API\s+(http://\S+)/api/v1")[0].group(1)
        r = httpx.post(api + "/api/v1/users/freelancers/register", timeout=20,
                       json={"email": "f@example.com", "password": "password-1", "fullName": "F"})
        assert r.status_code == 201
        from workup.gateway import TokenService
        assert TokenService(["a-stable-signing-key-of-enough-length"]).verify(r.json()["authToken"]).role == "FREELANCER"
        assert _stop(proc, signal.SIGINT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_gateway_needs_a_broker():
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}
    r = subprocess.run(WORKUP + ["gateway"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2
    assert "WORKUP_AMQP_URL" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_gateway_port_in_use_is_a_clear_error(tmp_path):
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        env = {**os.environ, "WORKUP_AMQP_URL": env_value("WORKUP_TEST_AMQP_URL"), "WORKUP_JWT_KEY": "k" * 32,
               "WORKUP_DATA_DIR": str(tmp_path)}
        r = subprocess.run(WORKUP + ["gateway", "--port", str(port)], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


def test_gateway_serves_on_rabbitmq_and_stops(tmp_path):
    env = {**os.environ, "WORKUP_AMQP_URL": env_value("WORKUP_TEST_AMQP_URL"), "WORKUP_JWT_KEY": "k" * 32,
           "WORKUP_DATA_DIR": str(tmp_path), "WORKUP_AMQP_PREFIX": f"gwcli{os.getpid()}"}
    proc = subprocess.Popen(WORKUP + ["gateway", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env)
    try:
        url = _read_until(proc, r"WorkUp gateway on (http://\S+)")[0].group(1)
        assert httpx.get(url + "/health", timeout=10).json() == {"status": "ok"}
        # no users service on this prefix: 503 with Retry-After, not a hang
        r = httpx.post(url + "/api/v1/users/login", json={"email": "a@b.co", "password": "password-1"}, timeout=20)
        assert r.status_code == 503 and r.headers["retry-after"]
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_bench_gateway_runs(tmp_path):
    import json
    out = tmp_path / "bench.json"
    r = subprocess.run(WORKUP + ["bench", "gateway", "--duration", "0.5", "--warmup", "0.2", "--rounds", "1",
                                 "--connections", "2", "--json", str(out)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    data = json.loads(out.read_text())
    names = [x["name"] for x in data["results"]]
    assert names == ["bare", "gateway"]
    assert all(x["calls"] > 0 and x["errors"] == 0 for x in data["results"])
    assert data["ratio"] > 0 and "cached GET /api/v1/users/me" in r.stdout


def test_up_reads_the_limits_and_the_slow_client_bound_from_its_environment(tmp_path):
    import socket

    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKUP_", "UPLOAD_"))}
    env.update({"WORKUP_HTTP_IDLE_TIMEOUT": "2", "WORKUP_REGISTER_LIMIT_ADDRESS": "1", "WORKUP_LOG_LEVEL": "WARNING"})
    proc = subprocess.Popen(WORKUP + ["up", "--port", "0", "--media-port", "0", "--data-dir", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        api = _read_until(proc, r"API\s+(http://\S+)/api/v1")[0].group(1)
        _read_until(proc, "Press Ctrl-C")
        body = {"password": "password-1", "fullName": "F"}
        with httpx.Client(base_url=api, timeout=20) as http:
            assert http.post("/api/v1/users/freelancers/register", json={"email": "a@example.com", **body}).status_code == 201
            r = http.post("/api/v1/users/freelancers/register", json={"email": "b@example.com", **body})
            assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        host, port = api.removeprefix("http://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            started = time.monotonic()
            closed = False
            for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaa":   # a byte a second
                try:
                    sock.sendall(bytes([byte]))
                    sock.settimeout(1.0)
                    if sock.recv(1024) == b"":
                        closed = True
                        break
                except socket.timeout:
                    continue
                except OSError:
                    closed = True
                    break
            assert closed and time.monotonic() - started <= 4.0
        assert _stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
