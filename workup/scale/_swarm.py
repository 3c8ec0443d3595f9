"""Docker Swarm: observe services labelled ``swarm.autoscaler=true`` and set their replicas.

CPU comes from Prometheus over cAdvisor (``container_cpu_usage_seconds_total``), summed per Swarm
service and normalised by what the service may use: replicas × its CPU limit
(``deploy.resources.limits.cpus``; one core when unset). Labels: ``swarm.autoscaler.minimum`` and
``swarm.autoscaler.maximum`` (defaults 1 and 10), optional ``swarm.autoscaler.queue`` naming the
work queue whose depth also counts.

An engine or a Prometheus that cannot be read raises :class:`Unavailable` (the loop holds); a
service Prometheus has no figure for is observed with unknown CPU (the rule holds it).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Callable, Protocol, Sequence, TypeVar

import httpx
import msgspec
import requests
import trio

from ._loop import Unavailable
from ._policy import Observation, ScalePolicy

if TYPE_CHECKING:
    import docker

__all__ = ["SwarmService", "SwarmProvider", "PrometheusCpu", "policy_from_labels", "cpu_query", "LABEL"]

T = TypeVar("T")

LABEL = "swarm.autoscaler"
_SERVICE = "container_label_com_docker_swarm_service_name"   # cAdvisor's name for the task's service label


def cpu_query(window: float) -> str:
    """Cores in use per Swarm service, averaged over the last ``window`` seconds."""
    return (f'sum by ({_SERVICE}) '
            f'(rate(container_cpu_usage_seconds_total{{{_SERVICE}!=""}}[{max(int(window), 1)}s]))')


class SwarmService(msgspec.Struct, frozen=True):
    name: str
    replicas: int
    cpus_per_replica: float
    labels: dict[str, str]


def policy_from_labels(labels: dict[str, str], base: ScalePolicy) -> ScalePolicy:
    """Min/max from the service's labels; a malformed label is a ValueError naming it."""
    def number(key: str, default: int) -> int:
        raw = labels.get(f"{LABEL}.{key}")
        if raw is None or raw == "":
            return default
        if not raw.strip().isdigit():
            raise ValueError(f"label {LABEL}.{key} must be a whole number, got {raw!r}")
        return int(raw)
    return msgspec.structs.replace(base, minimum=number("minimum", base.minimum),
                                   maximum=number("maximum", base.maximum))


class CpuSource(Protocol):
    def cores_by_service(self) -> dict[str, float]: ...


class QueueDepthSource(Protocol):
    def depth(self, queue: str) -> int | None: ...


class PrometheusCpu:
    """CPU cores in use per Swarm service, from the Prometheus HTTP API."""

    def __init__(self, url: str, *, window: float = 60.0, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.query = cpu_query(window)
        self._client = httpx.Client(base_url=self.url, timeout=timeout)

    def cores_by_service(self) -> dict[str, float]:
        try:
            r = self._client.get("/api/v1/query", params={"query": self.query})
            r.raise_for_status()
            reply = msgspec.json.decode(r.content, type=_QueryReply)
        except (httpx.HTTPError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise Unavailable(f"Prometheus at {self.url}", exc) from exc
        return {row.metric[_SERVICE]: float(row.value[1]) for row in reply.data.result if row.metric.get(_SERVICE)}


class _Sample(msgspec.Struct):
    metric: dict[str, str]
    value: tuple[float, str]


class _Vector(msgspec.Struct):
    result: list[_Sample]


class _QueryReply(msgspec.Struct):
    data: _Vector


class SwarmProvider:
    """Reads and scales Swarm services through the Docker Engine API (``docker`` SDK, called off
    the trio loop)."""

    scope = f"Swarm services labelled {LABEL}=true"

    def __init__(self, docker_client: docker.DockerClient, cpu: CpuSource,
                 queues: QueueDepthSource | None = None) -> None:
        self._docker = docker_client
        self._cpu = cpu
        self._queues = queues

    async def services(self) -> list[SwarmService]:
        return await trio.to_thread.run_sync(self._services)

    def _services(self) -> list[SwarmService]:
        found = []
        for svc in _engine(lambda: self._docker.services.list(filters={"label": f"{LABEL}=true"})):
            spec = svc.attrs["Spec"]
            replicated = spec.get("Mode", {}).get("Replicated")
            if replicated is None:  # global services are not ours to scale
                continue
            nano = spec.get("TaskTemplate", {}).get("Resources", {}).get("Limits", {}).get("NanoCPUs") or 0
            found.append(SwarmService(spec["Name"], int(replicated.get("Replicas", 0)),
                                      nano / 1e9 if nano else 1.0, dict(spec.get("Labels") or {})))
        return found

    async def observe(self, services: Sequence[SwarmService]) -> dict[str, Observation]:
        return await trio.to_thread.run_sync(self._observe, services)

    def _observe(self, services: Sequence[SwarmService]) -> dict[str, Observation]:
        cores = self._cpu.cores_by_service()
        now = time.monotonic()
        out = {}
        for s in services:
            used = cores.get(s.name)
            capacity = max(s.replicas, 1) * s.cpus_per_replica
            queue = s.labels.get(f"{LABEL}.queue")
            depth = self._queues.depth(queue) if (queue and self._queues) else None
            out[s.name] = Observation(replicas=s.replicas, utilisation=None if used is None else used / capacity,
                                      queue_depth=depth, at=now)
        return out

    async def scale(self, name: str, replicas: int) -> None:
        await trio.to_thread.run_sync(lambda: _engine(lambda: self._scale(name, replicas)))

    def _scale(self, name: str, replicas: int) -> None:
        # the spec as stored with only the replica count changed, as `docker service scale` does.
        # Not the SDK's Service.scale() nor fetch_current_spec: both send the spec with the engine's
        # defaults filled in (stop grace period, restart policy), a changed task template for which
        # Swarm replaces every running task, so each scaling restarted the busy replicas too
        svc = self._docker.services.get(name)
        spec = svc.attrs["Spec"]
        self._docker.api.update_service(
            svc.id, svc.version, name=spec["Name"], labels=spec.get("Labels"), task_template=spec["TaskTemplate"],
            mode={"Replicated": {"Replicas": replicas}}, update_config=spec.get("UpdateConfig"),
            rollback_config=spec.get("RollbackConfig"), endpoint_spec=spec.get("EndpointSpec"))


def _engine(call: Callable[[], T]) -> T:
    """``call()`` on the Docker engine; a refused connection or an engine error is Unavailable."""
    from docker.errors import DockerException
    try:
        return call()
    except (DockerException, requests.RequestException) as exc:
        raise Unavailable("the Docker engine", exc) from exc
