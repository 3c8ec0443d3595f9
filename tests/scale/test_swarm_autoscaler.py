"""`workup scale --provider swarm` against the real thing: a one-node Swarm on a private dockerd
(``ops/docker/engine``), the WorkUp image (``ops/image/build``), cAdvisor and Prometheus beside it
(``ops/monitoring/``), and the scaler as a real process.

The labelled service is the users worker (each login costs a full scrypt hash: real CPU, made
through the API): ``swarm.autoscaler.minimum=1``, ``.maximum=3``, a CPU limit per replica. The
gateway, unlabelled, is the way in. Under a stream of logins the scaler must raise the replica
count, never above 3; after the stream stops it must bring it back to 1; the gateway is never
touched. Replica counts are read from the engine (the Engine API), not from the scaler, and
Prometheus must have scraped the scaler's ``workup_scale_*`` series. The times measured are
printed (``docs/scale.md`` quotes them).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import threading
import time

import httpx
import pymongo
import pytest
import trio

from tests.conftest import service_url
from tests.scale._engine import Engine, swarm_engine
from tests.scale._monitoring import free_port, monitoring
from tests.transport._amqp_env import AMQP_URL, unique_prefix
from workup.cli.gateway import stop_processes
from workup.transport import AmqpTransport
from workup.transport.identity import IDENTITY_ENV

# a replica may use a fifth of a core: under a login stream it is saturated even on a busy
# 2-core machine, and idle it is far below the down threshold
CPU_LIMIT = "0.2"
MAXIMUM = 3
# short everything: the rule's timing is tested in test_policy.py, here it must only be honoured
SCALER_FLAGS = ["--interval", "2", "--cpu-window", "10", "--cpu-up", "60", "--cpu-down", "20",
                "--cooldown-up", "6", "--cooldown-down", "6", "--down-window", "15"]
UP_TIMEOUT = 150.0     # from the first login to a second replica
DOWN_TIMEOUT = 150.0   # from the last login back to the minimum
CONCURRENT_LOGINS = 6


# on a fresh machine the first test also installs docker.io and builds the image and cAdvisor
# (cold: several minutes, bounded by each script's own timeout); warm, each test takes one or two
pytestmark = pytest.mark.timeout(2400)


@pytest.fixture(scope="module")
def engine() -> Engine:
    with swarm_engine() as e:
        yield e


def test_without_prometheus_the_scaler_holds_a_real_service(engine, tmp_path):
    """Prometheus away (a closed port): one line per cycle and no change, even with every delay at
    0 so that missing data taken for an idle service would shrink it at once."""
    name = f"wu{secrets.token_hex(3)}-idle"
    engine.cli("service", "create", "--detach", "--no-resolve-image", "--network", "host", "--replicas", "2",
               "--label", "swarm.autoscaler=true", "--label", "swarm.autoscaler.minimum=1",
               "--entrypoint", "/bin/sleep", "--name", name, engine.image, "infinity")
    client = engine.client()
    try:
        url = f"http://127.0.0.1:{free_port()}"
        r = subprocess.run([sys.executable, "-m", "workup", "scale", "--provider", "swarm", "--cycles", "3",
                            "--interval", "0.5", "--cooldown-down", "0", "--down-window", "0",
                            "--prometheus-url", url], capture_output=True, text=True, timeout=60,
                           env={**os.environ, "DOCKER_HOST": engine.host})
        assert r.returncode == 0, r.stderr
        held = [line for line in r.stderr.splitlines()
                if f"holding every service this cycle: Prometheus at {url} unavailable" in line]
        assert len(held) == 3 and " -> " not in r.stderr, r.stderr
        assert replicas(client, name) == 2
    finally:
        engine.cli("service", "rm", name)


def replicas(client, name: str) -> int:
    return int(client.services.get(name).attrs["Spec"]["Mode"]["Replicated"]["Replicas"])


def running_tasks(client, name: str) -> set[str]:
    return {t["ID"] for t in client.services.get(name).tasks() if t["Status"]["State"] == "running"}


def wait(what: str, ok, timeout: float, engine: Engine, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while True:
        got = ok()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s; engine log: {engine.dir / 'dockerd.log'}")
        time.sleep(every)


class LoginStream:
    """Logins of unknown accounts through the gateway from a few threads: each one a full scrypt
    hash in a users replica, answered 401. Bounded: it stops when told, or after ``limit`` s."""

    def __init__(self, base: str, limit: float) -> None:
        self.base, self.limit = base, limit
        self.stop = threading.Event()
        self.answers: dict[int, int] = {}
        self.first: dict[int, str] = {}      # the first answer of each status, for the report
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(CONCURRENT_LOGINS)]

    def _run(self) -> None:
        end = time.monotonic() + self.limit
        with httpx.Client(base_url=self.base, timeout=15) as http:
            while not self.stop.is_set() and time.monotonic() < end:
                try:
                    r = http.post("/api/v1/users/login", json={
                        "email": f"nobody-{secrets.token_hex(4)}@example.com", "password": "not-the-password"})
                    status, body = r.status_code, r.text
                except httpx.HTTPError as exc:
                    status, body = 0, str(exc)
                with self._lock:
                    self.answers[status] = self.answers.get(status, 0) + 1
                    self.first.setdefault(status, body[:300])
                if status == 503:   # as a client should: wait the Retry-After (1 s) instead of spinning
                    self.stop.wait(1.0)

    def __enter__(self) -> "LoginStream":
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self._threads:
            t.join(20)


def test_cpu_load_through_the_api_scales_the_labelled_service_up_and_back_down(engine, tmp_path):
    tag = secrets.token_hex(3)
    users, gateway = f"wu{tag}-users", f"wu{tag}-gateway"
    prefix, mongo_db = unique_prefix(), f"wu{tag}_users"
    gw_port = free_port()
    env = {"WORKUP_AMQP_URL": AMQP_URL, "WORKUP_AMQP_PREFIX": prefix,
           "WORKUP_USERS_MONGO_URL": f"{service_url('ferretdb').rstrip('/')}/{mongo_db}",
           "WORKUP_JWT_KEY": secrets.token_urlsafe(32), "WORKUP_CONTROL_KEY": secrets.token_urlsafe(32),
           **{k: os.environ[k] for k in IDENTITY_ENV}}
    env_flags = [arg for k, v in env.items() for arg in ("--env", f"{k}={v}")]
    common = ["service", "create", "--detach", "--no-resolve-image", "--network", "host", *env_flags]
    engine.cli(*common, "--name", gateway, engine.image, "gateway", "--host", "127.0.0.1", "--port", str(gw_port))
    engine.cli(*common, "--name", users, "--limit-cpu", CPU_LIMIT, "--label", "swarm.autoscaler=true",
               "--label", "swarm.autoscaler.minimum=1", "--label", f"swarm.autoscaler.maximum={MAXIMUM}",
               engine.image, "worker", "users", "--processes", "1")
    client = engine.client()
    base = f"http://127.0.0.1:{gw_port}"

    def answering() -> bool:   # a login answered by a users replica: 401 (503 while none consumes)
        try:
            return httpx.post(f"{base}/api/v1/users/login", timeout=15, json={
                "email": "nobody@example.com", "password": "not-the-password"}).status_code == 401
        except httpx.HTTPError:
            return False
    try:
        wait("a login answered through the Swarm-run gateway by the users service", answering, 180, engine)
        assert len(running_tasks(client, users)) == 1
        measured = scale_under_load(engine, client, tmp_path, users, gateway, base)
    finally:
        for name in (users, gateway):   # kept with the test's files: what a failure is read from
            (tmp_path / f"{name}.log").write_text(engine.service_logs(name))
        cleanup(prefix, mongo_db)
    print(f"\nswarm autoscaler: {measured}; service logs in {tmp_path}")


def scale_under_load(engine: Engine, client, tmp_path, users: str, gateway: str, base: str) -> str:
    scaler_port = free_port()
    gateway_version = client.services.get(gateway).attrs["Version"]["Index"]

    log = tmp_path / "scale.log"
    seen: list[tuple[float, int, int]] = []     # (t, users replicas, gateway replicas) from the engine
    with monitoring(tmp_path / "monitoring", scrape={"scale": scaler_port},
                    docker=engine.host) as prometheus, open(log, "wb") as out:
        scaler = subprocess.Popen(
            [sys.executable, "-m", "workup", "scale", "--provider", "swarm", *SCALER_FLAGS,
             "--prometheus-url", prometheus.url, "--metrics-port", str(scaler_port)],
            env={**os.environ, "DOCKER_HOST": engine.host}, stdout=out, stderr=out)
        try:
            def sample() -> int:
                n = replicas(client, users)
                seen.append((time.monotonic(), n, replicas(client, gateway)))
                return n

            # idle first: the scaler sees the service and holds it at 1 before any load
            wait("the scaler holding the idle service at 1",
                 lambda: re.search(rf"{users}: replicas=1 cpu=\d+% \S+ -> hold 1", log.read_text()),
                 90, engine)
            assert sample() == 1
            (first,) = running_tasks(client, users)
            started = time.monotonic()
            with LoginStream(base, limit=UP_TIMEOUT + 60) as stream:
                wait("a second users replica under load", lambda: sample() >= 2, UP_TIMEOUT, engine)
                up_after = time.monotonic() - started
                # scaling adds replicas beside the busy one: it must not restart it
                wait("a second replica running", lambda: len(running_tasks(client, users)) >= 2, 60, engine)
                kept = first in running_tasks(client, users)
                # keep the load a little longer: it may go on up, but never past the maximum
                settle = time.monotonic() + 20
                while time.monotonic() < settle:
                    sample()
                    time.sleep(0.5)
            stopped = time.monotonic()
            peak = max(n for _, n, _ in seen)
            wait("back to one users replica after the load", lambda: sample() == 1, DOWN_TIMEOUT, engine)
            down_after = time.monotonic() - stopped
            decisions = prometheus.wait_for(
                f'workup_scale_decisions_total{{service="{users}",job="scale"}}',
                lambda rows: {r[0]["direction"] for r in rows if r[1] > 0} >= {"up", "down"}, timeout=30)
            # the scaler's gauge reaches 1 one scrape after the engine does: wait for that scrape
            desired = prometheus.wait_for(f'workup_scale_desired_replicas{{service="{users}",job="scale"}}',
                                          lambda rows: bool(rows) and rows[0][1] == 1, timeout=30)
        finally:
            stop_processes([scaler], timeout=10)
    text = log.read_text()
    assert stream.answers.get(401, 0) > 0, stream.answers          # the load was real logins
    assert 2 <= peak <= MAXIMUM and all(1 <= n <= MAXIMUM for _, n, _ in seen), seen
    assert kept, "scaling up replaced the replica that was running"
    assert 503 not in stream.answers, stream.first    # and the service was never without a consumer
    assert all(g == 1 for _, _, g in seen), seen                  # the unlabelled gateway: never scaled
    assert client.services.get(gateway).attrs["Version"]["Index"] == gateway_version
    assert gateway not in text and f"{users}: replicas=1 cpu=" in text and "-> up " in text and "-> down 1" in text
    assert {r[0]["direction"] for r in decisions} >= {"up", "down"}
    assert desired and desired[0][1] == 1
    return (f"up to {peak} replicas {up_after:.0f} s after the load started, back to 1 {down_after:.0f} s "
            f"after it stopped; logins answered: {dict(sorted(stream.answers.items()))}, first of each: {stream.first}")


def cleanup(prefix: str, mongo_db: str) -> None:
    async def delete_queues() -> None:
        async with AmqpTransport.connect(AMQP_URL, prefix=prefix) as t:
            await t.delete_topology(["users"])
    trio.run(delete_queues)
    pymongo.MongoClient(service_url("ferretdb"), serverSelectionTimeoutMS=5000).drop_database(mongo_db)
