"""Each role holds only the keys it needs (issue 16). What every container of ``ops/swarm/stack.yml``
mounts and names (the compose files, merge keys resolved); a real ``workup
gateway`` that starts and answers without the service key; a real process missing a key it needs
that stops at start with one line; and the keys distributed ``workup up`` gives its gateways, in
its own process and in the real gateway processes it starts. The deployed stack's tasks are
checked in ``test_swarm.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import yaml

from workup.cli.up import child_env, gateway_env, process_identity
from workup.settings import Settings

from .conftest import ROOT, free_port

# role -> the *_FILE variables it reads -> the file under /run/secrets each names
SERVICE_KEYS = {"WORKUP_CONTROL_KEY_FILE": "workup_control_key",
                "WORKUP_GATEWAY_PUBLIC_KEY_FILE": "workup_gateway_public_key",
                "WORKUP_SERVICE_KEY_FILE": "workup_service_key",
                "WORKUP_AMQP_PASSWORD_FILE": "workup_amqp_password"}
NEEDS: dict[str, dict[str, str]] = {
    "gateway": {"WORKUP_JWT_KEY_FILE": "workup_jwt_key", "WORKUP_GATEWAY_KEY_FILE": "workup_gateway_key",
                "WORKUP_AMQP_PASSWORD_FILE": "workup_amqp_password"},
    "users": SERVICE_KEYS,
    "jobs": SERVICE_KEYS,
    "contracts": SERVICE_KEYS,
    "payments": {**SERVICE_KEYS, "WORKUP_PAYMENTS_POSTGRES_PASSWORD_FILE": "workup_postgres_password"},
    "media": {"WORKUP_UPLOAD_PASSWORD_FILE": "workup_upload_password"},
    "autoscaler": {},
}
# a key given straight in the environment would be a secret outside Docker's secrets
SECRET_VALUES = ("WORKUP_JWT_KEY", "WORKUP_CONTROL_KEY", "WORKUP_GATEWAY_KEY", "WORKUP_GATEWAY_PUBLIC_KEY",
                 "WORKUP_SERVICE_KEY", "WORKUP_UPLOAD_PASSWORD", "UPLOAD_PASSWORD")


def compose_file(name: str) -> dict[str, Any]:
    """A file of ops/swarm/ as the engine reads it before its overrides (YAML merge keys resolved)."""
    data: dict[str, Any] = yaml.safe_load((ROOT / "ops/swarm" / name).read_text())
    return data


def test_each_role_of_the_stack_mounts_and_names_only_the_secrets_it_reads() -> None:
    services = compose_file("stack.yml")["services"]
    for role, needs in NEEDS.items():
        env: dict[str, str] = services[role].get("environment") or {}
        mounted = {s.get("target") or s["source"]: s["source"] if isinstance(s, dict) else s
                   for s in (x if isinstance(x, dict) else {"source": x} for x in services[role].get("secrets") or [])}
        files = {k: v for k, v in env.items() if k.endswith("_FILE")}
        assert files == {k: f"/run/secrets/{name}" for k, name in needs.items()}, role
        assert set(mounted) == set(needs.values()), role      # nothing mounted that nobody reads
        assert not set(env) & set(SECRET_VALUES), role
        if "workup_amqp_password" in mounted:                   # its own broker account's password
            assert mounted["workup_amqp_password"] == f"workup_amqp_{role}", role
            assert f"//workup-{role}@" in env["WORKUP_AMQP_URL"], role
    assert "WORKUP_AMQP_URL" not in services["autoscaler"]["environment"]   # no broker at all
    assert "WORKUP_AMQP_URL" not in services["media"]["environment"]


@pytest.mark.parametrize("override", ["publish.yml", "one-node.yml"])
def test_the_overrides_add_no_secret(override: str) -> None:
    # an override adds to stack.yml's lists and maps (docker stack deploy -c stack.yml -c it)
    for role, service in compose_file(override)["services"].items():
        assert "secrets" not in service, role
        env = service.get("environment") or {}
        assert not [k for k in env if k.endswith("_FILE") or k in SECRET_VALUES], role


def test_the_autoscaler_runs_a_cycle_with_the_stacks_environment_alone(tmp_path: Path) -> None:
    # one-node.yml does not run it: its command and environment of stack.yml, no secret, no
    # broker, an engine that is not there (the cycle holds and says why), and nothing else
    service = compose_file("stack.yml")["services"]["autoscaler"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "DOCKER_HOST": f"unix://{tmp_path}/absent.sock", **service["environment"]}
    argv = [*service["command"], "--cycles", "1", "--interval", "0.5", "--dry-run"]
    argv[argv.index("--metrics-port") + 1] = "0"       # any free port, not the stack's 9500
    argv[argv.index("--host") + 1] = "127.0.0.1"
    proc = subprocess.run([sys.executable, "-m", "workup", *argv], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "scaling Swarm services labelled swarm.autoscaler=true" in proc.stderr + proc.stdout
    assert "holding every service this cycle: the Docker engine unavailable" in proc.stderr + proc.stdout


def _without_keys(**extra: str) -> dict[str, str]:
    """This environment without the session's keys (tests/conftest.py sets them) and without a dev
    node's role accounts (the URL given is the test account's), plus ``extra``."""
    drop = (*SECRET_VALUES, "WORKUP_AMQP_ACCOUNTS_DIR")
    return {**{k: v for k, v in os.environ.items() if k not in drop and not k.endswith("_FILE")}, **extra}


def wait_health(proc: subprocess.Popen[bytes], port: int, log: Path, *, timeout: float) -> None:
    """Until ``/health`` on ``port`` answers 200; fails if ``proc`` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"{proc.args} exited with {proc.returncode}: {log.read_text()[-3000:]}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"no /health 200 within {timeout:.0f} s: {log.read_text()[-3000:]}"
        time.sleep(0.3)


def test_the_gateway_starts_and_answers_without_the_service_key(tmp_path: Path, amqp_url: str) -> None:
    data, port = tmp_path / "data", free_port()
    # the service key's variable names a file that is not there: a gateway that read it would stop
    env = _without_keys(WORKUP_AMQP_URL=amqp_url, WORKUP_AMQP_PREFIX=f"keys{uuid.uuid4().hex[:8]}",
                        WORKUP_DATA_DIR=str(data), WORKUP_PORT=str(port), WORKUP_HOST="127.0.0.1",
                        WORKUP_SERVICE_KEY_FILE=str(tmp_path / "absent" / "workup_service_key"),
                        WORKUP_CONTROL_KEY_FILE=str(tmp_path / "absent" / "workup_control_key"))
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        gateway = subprocess.Popen([sys.executable, "-m", "workup", "gateway"], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_health(gateway, port, log, timeout=90)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(timeout=60)
    # unset, its own key is generated into the data directory; the service's is not
    assert sorted(p.name for p in (data / "identity").iterdir()) == ["gateway.key", "gateway.pub"]
    assert not (data / "control.key").exists()


@pytest.mark.parametrize("argv, variable, field", [
    (["worker", "users"], "WORKUP_SERVICE_KEY_FILE", "service_key"),
    (["worker", "payments"], "WORKUP_GATEWAY_PUBLIC_KEY_FILE", "gateway_public_key"),
    (["worker", "jobs"], "WORKUP_CONTROL_KEY_FILE", "control_key"),
    (["gateway"], "WORKUP_GATEWAY_KEY_FILE", "gateway_key"),
    (["gateway"], "WORKUP_JWT_KEY_FILE", "jwt_key"),
    (["media"], "WORKUP_UPLOAD_PASSWORD_FILE", "upload_password_file"),
])
def test_a_process_missing_a_key_it_needs_stops_at_start_with_one_line(
        tmp_path: Path, amqp_url: str, argv: list[str], variable: str, field: str) -> None:
    # what a container whose secret was not mounted sees: the variable names a missing file
    missing = tmp_path / "run" / "secrets" / variable.lower()
    env = _without_keys(WORKUP_AMQP_URL=amqp_url, WORKUP_DATA_DIR=str(tmp_path / "data"),
                        WORKUP_UPLOAD_USER="uploader", **{variable: str(missing)})
    proc = subprocess.run([sys.executable, "-m", "workup", *argv], env=env, capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert field in lines[0] and str(missing) in lines[0], lines[0]


def test_distributed_up_gives_its_gateways_the_gateway_key_alone(tmp_path: Path) -> None:
    embedded = Settings(data_dir=str(tmp_path), amqp_url="amqp://u:p@127.0.0.1:5672/", control_key="control")
    settings = msgspec.structs.replace(embedded, service_key_file=str(tmp_path / "absent"))
    # one process that is the whole system (embedded, or a broker without Redis): both keys,
    # generated into the data directory
    whole = process_identity(embedded, split=False)
    assert whole.gateway_key is not None and whole.service_key is not None
    # the services in processes of their own: this process is a gateway, the service key unread
    # (its variable names a missing file) although the data directory holds one
    gateway = process_identity(settings, split=True)
    assert gateway.gateway_key is not None and gateway.service_key is None and gateway.gateway_public is not None
    assert (tmp_path / "identity" / "service.key").exists()
    # the other gateway processes are not handed the variables of keys they do not use; the
    # workers are (tests/conftest.py puts the session's keys in this environment)
    workers, gateways = child_env(settings), gateway_env(settings)
    for name in ("WORKUP_SERVICE_KEY", "WORKUP_SERVICE_KEY_FILE", "WORKUP_CONTROL_KEY"):
        assert name in workers and name not in gateways, name
    assert gateways["WORKUP_GATEWAY_KEY"] == os.environ["WORKUP_GATEWAY_KEY"]
    assert gateways["WORKUP_AMQP_URL"] == workers["WORKUP_AMQP_URL"]



@pytest.mark.timeout(300)
def test_distributed_up_hands_its_gateway_processes_no_service_key(tmp_path: Path, amqp_url: str,
                                                                    redis_url: str) -> None:
    """The same on real processes: distributed ``workup up`` (RabbitMQ and Redis, the stores on
    SQLite) given every key in its environment, as an operator would; its workers get the service
    and control keys, its other gateway process neither, and a user registers and logs in."""
    import psutil

    from ..blackbox._distributed import drop_amqp_names

    port, prefix = free_port(), f"keys{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKUP_")}
    env.update({name: os.environ[name] for name in ("WORKUP_GATEWAY_KEY", "WORKUP_GATEWAY_PUBLIC_KEY",
                                                    "WORKUP_SERVICE_KEY")},
               WORKUP_CONTROL_KEY="control-" + uuid.uuid4().hex, WORKUP_AMQP_URL=amqp_url,
               WORKUP_REDIS_URL=redis_url, WORKUP_AMQP_PREFIX=prefix, WORKUP_LOG_LEVEL="WARNING")
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([sys.executable, "-m", "workup", "up", "--port", str(port), "--media-port",
                               str(free_port()), "--data-dir", str(tmp_path / "data"),
                               "--gateway-processes", "2", "--processes", "1"],
                              env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_health(up, port, log, timeout=240)
        roles: dict[str, list[set[str]]] = {"gateway": [], "worker": []}
        for p in psutil.Process(up.pid).children():
            argv = p.cmdline()
            for role in roles:
                if role in argv[3:4]:          # python -m workup <role> ...
                    roles[role].append(set(p.environ()))
        assert len(roles["gateway"]) == 1 and len(roles["worker"]) == 4, roles
        for names in roles["gateway"]:
            assert "WORKUP_GATEWAY_KEY" in names
            assert not names & {"WORKUP_SERVICE_KEY", "WORKUP_CONTROL_KEY"}, names
        for names in roles["worker"]:
            assert {"WORKUP_SERVICE_KEY", "WORKUP_CONTROL_KEY", "WORKUP_GATEWAY_PUBLIC_KEY"} <= names
        email, password = f"keys-{uuid.uuid4().hex[:8]}@example.com", "keys-pass-1"
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            reg = http.post("/api/v1/users/freelancers/register",
                            json={"email": email, "password": password, "fullName": "Keys Test"})
            assert reg.status_code == 201, reg.text
            login = http.post("/api/v1/users/login", json={"email": email, "password": password})
            assert login.status_code == 200, login.text
            me = http.get("/api/v1/users/me", headers={"Authorization": f"Bearer {login.json()['authToken']}"})
            assert me.status_code == 200, me.text
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=90)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait(10)
        drop_amqp_names(amqp_url, prefix)
