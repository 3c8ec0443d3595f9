"""``spawn-machine``: start a full extra replica of the backend.

Provider ``local``: the replica is processes on this machine joined to the same broker (one
``workup worker`` per service, plus a ``workup gateway`` when the whole system is asked for),
started detached with their logs in ``<data dir>/replicas/<name>/``.
Provider ``digitalocean``: one ``POST /v2/droplets`` whose cloud-init installs Docker and joins the
Swarm with the given token; the Swarm (and the autoscaler) then place the replicas on it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec

__all__ = ["SpawnError", "spawn_local", "spawn_digitalocean", "cloud_init", "droplet_request",
           "SERVICES"]

SERVICES = ("users", "jobs", "contracts", "payments")
_WORKUP = [sys.executable, "-m", "workup"]


class SpawnError(Exception):
    """Spawning failed; ``str()`` is a one-line message."""


def spawn_local(name: str, services: list[str], *, data_dir: Path, env: dict[str, str],
                gateway_port: int | None, processes: int = 1) -> list[tuple[str, int]]:
    """Start the replica's processes; returns ``(role, pid)`` pairs (also written to ``pids``)."""
    logs = data_dir / "replicas" / name
    logs.mkdir(parents=True, exist_ok=True)
    commands = [(svc, [*_WORKUP, "worker", svc, "--processes", str(processes)]) for svc in services]
    if gateway_port is not None:
        commands.append(("gateway", [*_WORKUP, "gateway", "--port", str(gateway_port)]))
    started = []
    for role, argv in commands:
        with open(logs / f"{role}.log", "ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    env=env, start_new_session=True)
        started.append((role, proc.pid))
    (logs / "pids").write_text("".join(f"{role} {pid}\n" for role, pid in started))
    return started


def cloud_init(swarm_token: str, manager: str) -> str:
    """User data for a fresh Ubuntu droplet: install Docker, join the Swarm as a worker."""
    return "\n".join([
        "#cloud-config",
        "package_update: true",
        "packages: [docker.io]",
        "runcmd:",
        "  - systemctl enable --now docker",
        f"  - docker swarm join --token {swarm_token} {manager}",
        "  - touch /var/lib/workup-joined",
        "",
    ])


def droplet_request(name: str, *, region: str, size: str, image: str, user_data: str) -> dict[str, Any]:
    return {"name": name, "region": region, "size": size, "image": image, "user_data": user_data,
            "monitoring": True, "tags": ["workup", "swarm-worker"]}


def spawn_digitalocean(name: str, *, token: str, swarm_token: str, manager: str,
                       api_url: str = "https://api.digitalocean.com", region: str = "lon1",
                       size: str = "s-4vcpu-8gb", image: str = "ubuntu-24-04-x64",
                       timeout: float = 30.0) -> dict[str, Any]:
    """Create the droplet; returns the API's ``droplet`` object (id, name, status)."""
    body = droplet_request(name, region=region, size=size, image=image,
                           user_data=cloud_init(swarm_token, manager))
    try:
        r = httpx.post(f"{api_url.rstrip('/')}/v2/droplets", json=body, timeout=timeout,
                       headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise SpawnError(f"DigitalOcean API unreachable: {exc}") from None
    if r.status_code != 202 and r.status_code != 201:
        try:
            message = msgspec.json.decode(r.content).get("message", "")
        except (msgspec.DecodeError, AttributeError):
            message = r.text[:200]
        raise SpawnError(f"DigitalOcean refused the droplet ({r.status_code}): {message}")
    try:
        droplet = msgspec.json.decode(r.content)["droplet"]
    except (msgspec.DecodeError, KeyError, TypeError):
        raise SpawnError("DigitalOcean answered without a droplet") from None
    return droplet
