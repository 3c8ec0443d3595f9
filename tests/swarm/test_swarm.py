"""WorkUp on a real one-node Docker Swarm (issue 13), through the Swarm-run gateway: the whole
hire-to-payout flow, each task holding only its role's keys (issue 16), ``docker service scale``
seen by ``workup control``, a rolling update of the gateway under a steady stream, and a killed
task replaced. The session's stack: ``conftest.py``.
Figures go to the test's output (``-s``) and to ``docs/deploy.md``."""

from __future__ import annotations

import json
import os
import signal
import time

import httpx
import pytest
import trio

from workup.bench.flow import Flow
from workup.bench.loadgen import Recorder, UnitFailed

from .conftest import Swarm

# the first test pays for the session's engine, image and deploy
pytestmark = pytest.mark.timeout(1500)


async def hire_to_payout(swarm: Swarm) -> None:
    """One whole story (register, post, propose, accept, progress, evaluate, deposit, pay, wallet,
    print) through the Swarm-run gateway; fails with the step that went wrong."""
    flow = Flow(reuse_users=False)
    try:
        await flow.prepare(swarm.base_url, 1)
        with trio.fail_after(120):
            await flow.run(0, Recorder(None, measured=False))
    except UnitFailed as exc:
        pytest.fail(f"hire-to-payout through the Swarm gateway failed at {exc.step!r}: {exc}; "
                    f"logs: {', '.join(str(swarm.role_log(r)) for r in ('gateway', 'jobs', 'contracts', 'payments'))}")
    finally:
        await flow.aclose()


async def test_hire_to_payout_through_the_swarm_gateway(swarm: Swarm) -> None:
    await hire_to_payout(swarm)
    async with httpx.AsyncClient(base_url=swarm.base_url, timeout=10) as http:
        health = await http.get("/health")
    assert health.status_code == 200, health.text
    # media's own server is a Swarm service too (its health route answers)
    async with httpx.AsyncClient(timeout=10) as http:
        describe = await http.get(f"http://127.0.0.1:{swarm.media_port}/describe")
    assert describe.status_code == 200, describe.text


def _held(swarm: Swarm, role: str) -> tuple[set[str], set[str]]:
    """What the role's running container holds: the files in /run/secrets and the names of the
    variables in the environment of its main process (pid 1, the workup command)."""
    [container] = swarm.containers(role)
    out = swarm.docker("exec", container, "python", "-c",
                       "import json, os; print(json.dumps([os.listdir('/run/secrets') "
                       "if os.path.isdir('/run/secrets') else [], [v.split('=', 1)[0] for v in "
                       "open('/proc/1/environ', 'rb').read().decode().split(chr(0)) if v]]))",
                       step=f"docker exec {role}: its secrets and environment")
    files, names = json.loads(out)
    return set(files), set(names)


def _spec(swarm: Swarm, role: str) -> tuple[set[str], set[str]]:
    """The secrets (file names) and variable names of the role's service spec."""
    out = swarm.docker("service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec}}",
                       swarm.service(role), step=f"docker service inspect {role}")
    spec = json.loads(out)
    return ({s["File"]["Name"] for s in spec.get("Secrets") or []},
            {v.split("=", 1)[0] for v in spec.get("Env") or []})


def test_each_task_holds_only_the_keys_of_its_role(swarm: Swarm) -> None:
    # the gateway: no service key (nor control key, nor gateway public key) mounted or named
    files, names = _held(swarm, "gateway")
    assert files == {"workup_jwt_key", "workup_gateway_key", "workup_amqp_password"}, files
    assert not {n for n in names if n.startswith(("WORKUP_SERVICE_KEY", "WORKUP_CONTROL_KEY",
                                                  "WORKUP_GATEWAY_PUBLIC_KEY"))}, names
    assert {"WORKUP_JWT_KEY_FILE", "WORKUP_GATEWAY_KEY_FILE", "WORKUP_AMQP_PASSWORD_FILE"} <= names
    # a service still holds what it verifies and signs with, and no gateway or JWT key
    files, names = _held(swarm, "users")
    assert files == {"workup_control_key", "workup_gateway_public_key", "workup_service_key",
                     "workup_amqp_password"}, files
    assert "WORKUP_SERVICE_KEY_FILE" in names and not {n for n in names if n.startswith(("WORKUP_JWT_KEY",
                                                                                        "WORKUP_GATEWAY_KEY"))}, names
    # media: the upload password alone; the autoscaler (not run on one node): nothing
    files, names = _held(swarm, "media")
    assert files == {"workup_upload_password"}, files
    assert not {n for n in names if "KEY" in n or n.startswith("WORKUP_AMQP")}, names
    files, names = _spec(swarm, "autoscaler")
    assert not files and not {n for n in names if n.endswith("_FILE") or n.startswith("WORKUP_AMQP")}, names


def _processes(swarm: Swarm, service: str, expect: int) -> dict[str, int]:
    """host -> handled, for each worker process of ``service`` that answers ``status``."""
    # a supervisor and its one process per replica answer
    replies = json.loads(swarm.control(service, "status", "--json", "--expect", str(expect * 2), "--timeout", "10"))
    return {r["status"]["host"]: r["status"]["handled"]
            for r in replies if (r.get("status") or {}).get("role") == "process"}


async def freelancer_token(http: httpx.AsyncClient) -> str:
    email = f"swarm-{os.urandom(4).hex()}@example.com"
    reg = await http.post("/api/v1/users/freelancers/register",
                          json={"email": email, "password": "swarm-pass-1", "fullName": "Swarm Test"})
    assert reg.status_code == 201, reg.text
    login = await http.post("/api/v1/users/login", json={"email": email, "password": "swarm-pass-1"})
    assert login.status_code == 200, login.text
    return str(login.json()["authToken"])


async def test_scaled_jobs_show_in_control_status_and_share_the_work(swarm: Swarm) -> None:
    started = time.monotonic()
    swarm.docker("service", "scale", "--detach=false", f"{swarm.service('jobs')}=3",
                 step="docker service scale jobs=3", timeout=240)
    swarm.wait_healthy("jobs", 3, timeout=240)
    print(f"\nswarm: jobs 1 -> 3 replicas healthy in {time.monotonic() - started:.1f} s")
    before = _processes(swarm, "jobs", 3)
    assert len(before) == 3, f"workup control jobs status shows {sorted(before)}, expected 3 instances"
    # searches are jobs commands: the broker hands them round-robin to the three consumers
    async with httpx.AsyncClient(base_url=swarm.base_url, timeout=30) as http:
        token = await freelancer_token(http)
        results: list[int] = []

        async def search(i: int) -> None:
            r = await http.get(f"/api/v1/jobs/search?query=spread{i}", headers={"Authorization": f"Bearer {token}"})
            results.append(r.status_code)
        async with trio.open_nursery() as nursery:
            for i in range(90):
                nursery.start_soon(search, i)
    assert results.count(200) == 90, results
    after = _processes(swarm, "jobs", 3)
    spread = {host: after.get(host, 0) - before[host] for host in before}
    print(f"swarm: 90 searches over 3 jobs replicas: {sorted(spread.values())}")
    assert all(n > 0 for n in spread.values()), f"some jobs replica handled nothing: {spread}"
    swarm.docker("service", "scale", "--detach=false", f"{swarm.service('jobs')}=1",
                 step="docker service scale jobs=1", timeout=240)
    swarm.wait_healthy("jobs", 1, timeout=240)
    assert len(_processes(swarm, "jobs", 1)) == 1


async def test_rolling_update_of_the_gateway_loses_no_request(swarm: Swarm) -> None:
    old = set(swarm.containers("gateway"))
    async with httpx.AsyncClient(base_url=swarm.base_url, timeout=30) as http:
        auth = {"Authorization": f"Bearer {await freelancer_token(http)}"}
    outcomes: list[str] = []
    latencies: list[float] = []
    done = trio.Event()

    async def steady() -> None:
        # a new connection per request: each one is accepted by whichever gateway listens then
        async with httpx.AsyncClient(base_url=swarm.base_url, timeout=15,
                                     limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while not done.is_set():
                t0 = trio.current_time()
                try:
                    r = await http.get("/api/v1/jobs/search?query=rolling", headers=auth)
                    outcomes.append(str(r.status_code))
                except httpx.HTTPError as exc:
                    outcomes.append(type(exc).__name__)
                latencies.append(trio.current_time() - t0)
                await trio.sleep(0.05)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(steady)
        await trio.sleep(2)
        started = time.monotonic()
        await trio.to_thread.run_sync(lambda: swarm.docker(
            "service", "update", "--force", "--detach=false", swarm.service("gateway"),
            step="docker service update --force gateway", timeout=300))
        took = time.monotonic() - started
        await trio.sleep(2)
        done.set()
    new = set(swarm.containers("gateway", healthy=True))
    assert new and not new & old, f"the gateway's container was not replaced: {old} -> {new}"
    # each search goes gateway -> jobs worker -> Cassandra and back: anything but 200 is lost
    lost = [o for o in outcomes if o != "200"]
    print(f"\nswarm: rolling update of the gateway in {took:.1f} s; {len(outcomes)} requests, "
          f"{len(lost)} lost, slowest {max(latencies) * 1000:.0f} ms")
    assert len(outcomes) > 50
    assert not lost, f"requests lost during the rolling update: {lost}; log: {swarm.role_log('gateway')}"


async def test_a_killed_task_is_replaced_and_the_flow_still_passes(swarm: Swarm) -> None:
    [victim] = swarm.containers("payments")
    pid = int(swarm.docker("inspect", "--format", "{{.State.Pid}}", victim, step="docker inspect payments").strip())
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)     # the container's main process: the supervisor, as a crash would
    took = await trio.to_thread.run_sync(lambda: swarm.wait_healthy("payments", 1, timeout=240,
                                                                    exclude=frozenset({victim})))
    print(f"\nswarm: payments task killed, replacement healthy after {time.monotonic() - killed:.1f} s")
    assert took > 0
    await hire_to_payout(swarm)
