"""The one-node Swarm of issue 13, once per session: a private Docker engine (``ops/docker/engine``,
its state in a temporary directory, always torn down), the image (``ops/image/build``), and the
stack (``ops/swarm/stack.yml`` with ``ops/swarm/one-node.yml``) over the dev services, with broker
accounts, databases, keyspaces and a broker prefix of this session's own (all removed after).

Every step is bounded; a step that fails (the engine does not start, the image does not build, a
service does not become healthy) fails the test with the step's name and its log, never a skip.
The logs of every role and of ``dockerd`` are kept in the session's temporary directory
(``swarm-logs*``), since the engine's own directory goes with it."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from workup.transport.accounts import password_hash

from ..conftest import service_url

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "ops" / "docker" / "engine"
BUILD = ROOT / "ops" / "image" / "build"
DOCKER = "/usr/bin/docker"
ROLES = ("gateway", "users", "jobs", "contracts", "payments", "media")
WORKERS = ("users", "jobs", "contracts", "payments")
AMQP_ROLES = ("gateway", "users", "jobs", "contracts", "payments")   # the autoscaler has no broker password


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(argv: list[str], step: str, *, timeout: float, env: dict[str, str] | None = None,
        log: str | Path | None = None, check: bool = True, stdin: str | None = None) -> str:
    """Run a command, bounded; a failure or a timeout fails the test naming ``step`` and ``log``."""
    where = f"; log: {log}" if log else ""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, input=stdin)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{step}: no result within {timeout:.0f} s ({' '.join(map(str, argv))}){where}", pytrace=False)
    if check and result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
        pytest.fail(f"{step} failed (exit {result.returncode}){where}\n{tail}", pytrace=False)
    return result.stdout


def _rabbitmqctl_env() -> dict[str, str]:
    env = dict(os.environ)
    # the node ops/dev/services starts is workup@localhost, not rabbit@<host>
    if "RABBITMQ_NODENAME" not in env and os.path.exists("/var/lib/rabbitmq/workup/pid"):
        env["RABBITMQ_NODENAME"] = "workup@localhost"
    return env


def rabbitmq_definitions(passwords: dict[str, str]) -> dict[str, object]:
    """RabbitMQ definitions for ``user -> password`` (salted SHA-256, RabbitMQ's default hashing),
    each with every permission on vhost ``/``: what ``rabbitmqctl import_definitions`` and the
    stack's ``load_definitions`` read."""
    return {
        "users": [{"name": user, "password_hash": password_hash(pw), "tags": [],
                   "hashing_algorithm": "rabbit_password_hashing_sha256"} for user, pw in passwords.items()],
        "permissions": [{"user": user, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}
                        for user in passwords],
    }


class Swarm:
    """The deployed stack: the engine's CLI, its services and where the gateway answers."""

    def __init__(self, engine_dir: Path, logs: Path, tag: str) -> None:
        self.dir = engine_dir
        self.logs = logs
        self.tag = tag
        self.stack = f"wu{tag}"
        self.prefix = f"swarm{tag}"
        self.db = f"swarm{tag}"
        self.port = free_port()
        self.media_port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.control_key = secrets.token_urlsafe(32)
        # this session's broker accounts, all on vhost "/" with every permission: the stack's roles
        # (workup-<role>-<tag>, one-node.yml) and this test's own, for the controller and clean-up;
        # whatever accounts the dev node has for itself are left alone
        self.amqp_passwords = {f"workup-{role}-{tag}": secrets.token_urlsafe(16) for role in (*AMQP_ROLES, "test")}
        self.amqp_url = f"amqp://workup-test-{tag}:{self.amqp_passwords[f'workup-test-{tag}']}@127.0.0.1:5672/"
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
                    "DOCKER_HOST": f"unix://{engine_dir}/docker.sock"}
        self.dockerd_log = engine_dir / "dockerd.log"

    def docker(self, *args: str, step: str, timeout: float = 60, check: bool = True,
               env: dict[str, str] | None = None, stdin: str | None = None) -> str:
        return run([DOCKER, *args], step, timeout=timeout, env={**self.env, **(env or {})},
                   log=self.dockerd_log, check=check, stdin=stdin)

    def service(self, role: str) -> str:
        return f"{self.stack}_{role}"

    def containers(self, role: str, *, healthy: bool = False) -> list[str]:
        """Ids of the role's running containers (only the healthy ones with ``healthy``)."""
        args = ["ps", "-q", "--no-trunc", "--filter", f"label=com.docker.swarm.service.name={self.service(role)}"]
        if healthy:
            args += ["--filter", "health=healthy"]
        return self.docker(*args, step=f"listing the containers of {role}").split()

    def role_log(self, role: str) -> Path:
        """The role's log so far, every container of it (exited ones too), saved under
        :attr:`logs`. Best effort: ``docker service logs`` can hang, so ``docker logs`` each."""
        path = self.logs / f"{role}.log"
        parts: list[str] = []
        try:
            ids = subprocess.run([DOCKER, "ps", "-aq", "--filter", f"label=com.docker.swarm.service.name={self.service(role)}"],
                                 capture_output=True, text=True, timeout=30, env=self.env).stdout.split()
            for cid in ids:
                out = subprocess.run([DOCKER, "logs", "--timestamps", cid], capture_output=True, text=True,
                                     timeout=30, env=self.env)
                parts.append(f"==== container {cid}\n{out.stdout}{out.stderr}")
        except (subprocess.TimeoutExpired, OSError) as exc:
            parts.append(f"==== reading the logs stopped: {exc}")
        path.write_text("\n".join(parts))
        return path

    def wait_healthy(self, role: str, count: int, *, timeout: float, exclude: frozenset[str] = frozenset()) -> float:
        """Wait until ``count`` healthy containers of ``role`` run (none of ``exclude``) and no
        other one runs; the seconds it took. Fails naming the role's log."""
        start = time.monotonic()
        while True:
            running = self.containers(role)
            healthy = [c for c in self.containers(role, healthy=True) if c not in exclude]
            if len(healthy) == count and len(running) == count:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                tasks = self.docker("service", "ps", "--no-trunc", "--format",
                                    "{{.Name}} {{.CurrentState}} {{.Error}}", self.service(role),
                                    step=f"listing the tasks of {role}", check=False)
                pytest.fail(f"{role}: {len(healthy)} healthy of {len(running)} running containers after "
                            f"{timeout:.0f} s, expected {count}; tasks:\n{tasks}log: {self.role_log(role)}",
                            pytrace=False)
            time.sleep(1)

    def control(self, *args: str, timeout: float = 60) -> str:
        """``workup control ...`` as a real CLI process against this stack's instances."""
        env = {**os.environ, "WORKUP_AMQP_URL": self.amqp_url, "WORKUP_AMQP_PREFIX": self.prefix,
               "WORKUP_CONTROL_KEY": self.control_key}
        env.pop("WORKUP_AMQP_ACCOUNTS_DIR", None)   # this URL's account, not a dev node's role account
        return run([sys.executable, "-m", "workup", "control", *args], f"workup control {' '.join(args)}",
                   timeout=timeout, env=env)


def _secrets(swarm: Swarm) -> dict[str, str]:
    values = {
        "workup_jwt_key": secrets.token_urlsafe(32),
        "workup_control_key": swarm.control_key,
        "workup_gateway_key": os.environ["WORKUP_GATEWAY_KEY"],          # the session's (tests/conftest.py)
        "workup_gateway_public_key": os.environ["WORKUP_GATEWAY_PUBLIC_KEY"],
        "workup_service_key": os.environ["WORKUP_SERVICE_KEY"],
        "workup_postgres_password": secrets.token_urlsafe(16),
        "workup_upload_password": secrets.token_urlsafe(16),
    }
    for role in AMQP_ROLES:
        values[f"workup_amqp_{role}"] = swarm.amqp_passwords[f"workup-{role}-{swarm.tag}"]
    values["workup_rabbitmq_definitions"] = json.dumps(rabbitmq_definitions(swarm.amqp_passwords))
    return values


def _provision(swarm: Swarm) -> None:
    """This session's broker accounts (one rabbitmqctl call) and its PostgreSQL database."""
    import psycopg
    from psycopg import sql

    # from stdin: a path would be read by the node, which runs as another user
    run(["rabbitmqctl", "import_definitions"], "creating the broker accounts", timeout=60,
        env=_rabbitmqctl_env(), stdin=json.dumps(rabbitmq_definitions(swarm.amqp_passwords)))
    with psycopg.connect(service_url("postgres"), autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(f"{swarm.db}_payments")))


def _unprovision(swarm: Swarm) -> None:
    """Remove what :func:`_provision` and the stack made on the shared dev services; best effort,
    each step bounded."""
    import psycopg
    import pymongo
    from psycopg import sql

    try:
        with psycopg.connect(service_url("postgres"), autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(f"{swarm.db}_payments")))
    except psycopg.Error:
        pass
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(service_url("ferretdb"),
                                                                          serverSelectionTimeoutMS=5000)
    try:
        client.drop_database(f"{swarm.db}_users")
    except pymongo.errors.PyMongoError:
        pass
    finally:
        client.close()
    _drop_keyspaces(swarm)
    _delete_topology(swarm)   # before the accounts go: it logs in as this session's test account
    deleting = [subprocess.Popen(["rabbitmqctl", "delete_user", user], env=_rabbitmqctl_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for user in swarm.amqp_passwords]
    for proc in deleting:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _drop_keyspaces(swarm: Swarm) -> None:
    from cassandra.cluster import Cluster

    from workup.settings import Settings
    points = Settings(cassandra_hosts=service_url("cassandra")).cassandra_contact_points()
    cluster = Cluster([h for h, _ in points], port=points[0][1])
    try:
        session = cluster.connect()
        for svc in ("jobs", "contracts"):
            session.execute(f"DROP KEYSPACE IF EXISTS {swarm.db}_{svc}", timeout=60)
    except Exception:   # best effort: the keyspaces are this session's only
        pass
    finally:
        cluster.shutdown()


def _delete_topology(swarm: Swarm) -> None:
    import trio

    from workup.transport import AmqpTransport

    async def delete() -> None:
        with trio.move_on_after(30):
            async with AmqpTransport.connect(swarm.amqp_url, prefix=swarm.prefix) as transport:
                await transport.delete_topology(list(WORKERS), timeout=20)
    trio.run(delete)


def _engine_down(engine_dir: Path, logs: Path) -> None:
    if (engine_dir / "dockerd.log").exists():
        shutil.copy(engine_dir / "dockerd.log", logs / "dockerd.log")
    down = subprocess.run(["bash", str(ENGINE), "down", str(engine_dir)], capture_output=True,
                          text=True, timeout=180)
    (logs / "engine-down.log").write_text(down.stdout + down.stderr)
    assert down.returncode == 0, f"ops/docker/engine down failed: {down.stderr}"


@pytest.fixture(scope="session")
def swarm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swarm]:
    engine_dir = tmp_path_factory.mktemp("engine")
    logs = tmp_path_factory.mktemp("swarm-logs")
    swarm = Swarm(engine_dir, logs, secrets.token_hex(3))
    # torn down in reverse order, every step even when one before it fails: the roles' logs, the
    # engine (its directory with it), then what this session made on the dev services
    with ExitStack() as teardown:
        teardown.callback(_engine_down, engine_dir, logs)
        t0 = time.monotonic()
        # the engine (installs docker.io when missing: bounded for a cold machine)
        run(["bash", str(ENGINE), "up", str(engine_dir)], "ops/docker/engine up", timeout=900,
            log=f"{engine_dir}/dockerd.log (kept as {logs}/dockerd.log)")
        t1 = time.monotonic()
        run(["bash", str(BUILD)], "ops/image/build", timeout=1200, env={**os.environ, **swarm.env},
            log=Path(os.environ.get("WORKUP_CACHE", Path.home() / ".cache/workup")) / "image" / "build.log")
        t2 = time.monotonic()
        teardown.callback(_unprovision, swarm)
        _provision(swarm)
        for name, value in _secrets(swarm).items():
            swarm.docker("secret", "create", name, "-", step=f"docker secret create {name}", stdin=value)
        variables = {"WORKUP_UPLOAD_USER": "uploader", "WORKUP_AMQP_PREFIX": swarm.prefix,
                     "WORKUP_ONE_NODE_DB": swarm.db, "WORKUP_ONE_NODE_AMQP_SUFFIX": f"-{swarm.tag}",
                     "WORKUP_ONE_NODE_PORT": str(swarm.port), "WORKUP_ONE_NODE_MEDIA_PORT": str(swarm.media_port)}
        teardown.callback(lambda: [swarm.role_log(role) for role in ROLES])
        swarm.docker("stack", "deploy", "--resolve-image", "never", "-c", str(ROOT / "ops/swarm/stack.yml"),
                     "-c", str(ROOT / "ops/swarm/one-node.yml"), swarm.stack, step="docker stack deploy",
                     timeout=120, env=variables)
        for role in ROLES:
            swarm.wait_healthy(role, 1, timeout=240)
        print(f"\nswarm: engine up {t1 - t0:.1f} s, image {t2 - t1:.1f} s, deploy until every role "
              f"is healthy {time.monotonic() - t2:.1f} s")
        yield swarm
