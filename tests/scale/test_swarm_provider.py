"""The Swarm provider's reading of service specs and the loop's acting on decisions.

The Docker engine and Prometheus are replaced by in-memory doubles here (pure logic: label parsing,
CPU normalisation, dry run). The provider against a real dockerd, cAdvisor and Prometheus:
``tests/scale/test_swarm_autoscaler.py``.
"""

import pytest

from workup.scale import ScalePolicy
from workup.scale._loop import Autoscaler
from workup.scale._swarm import SwarmProvider, policy_from_labels


class _Svc:
    def __init__(self, name, replicas, labels, nano_cpus=0, mode="Replicated"):
        mode_spec = {"Replicated": {"Replicas": replicas}} if mode == "Replicated" else {"Global": {}}
        self.attrs = {"Spec": {"Name": name, "Labels": labels, "Mode": mode_spec,
                               "TaskTemplate": {"Resources": {"Limits": {"NanoCPUs": nano_cpus}}}}}
        self.id, self.version = name, 7
        self.scaled_to = None


class _Docker:
    def __init__(self, svcs):
        self.svcs = {s.attrs["Spec"]["Name"]: s for s in svcs}
        outer = self

        class services:
            @staticmethod
            def list(filters):
                assert filters == {"label": "swarm.autoscaler=true"}
                return list(outer.svcs.values())

            @staticmethod
            def get(name):
                return outer.svcs[name]
        self.services = services

        class api:   # the low-level update the provider scales with: the stored spec, new Mode only
            @staticmethod
            def update_service(service_id, version, *, name, labels, task_template, mode, **rest):
                svc = outer.svcs[service_id]
                assert version == svc.version and (name, labels) == (svc.attrs["Spec"]["Name"], svc.attrs["Spec"]["Labels"])
                assert task_template is svc.attrs["Spec"]["TaskTemplate"]
                svc.scaled_to = mode["Replicated"]["Replicas"]
        self.api = api


class _Cpu:
    def __init__(self, cores):
        self.cores = cores

    def cores_by_service(self):
        return self.cores


async def test_utilisation_is_normalised_by_replicas_and_cpu_limit():
    docker = _Docker([_Svc("workup_payments", 2, {}, nano_cpus=500_000_000), _Svc("workup_jobs", 4, {})])
    p = SwarmProvider(docker, _Cpu({"workup_payments": 0.9, "workup_jobs": 1.0}))
    obs = await p.observe(await p.services())
    assert obs["workup_payments"].utilisation == pytest.approx(0.9)   # 0.9 / (2 x 0.5)
    assert obs["workup_jobs"].utilisation == pytest.approx(0.25)      # 1.0 / (4 x 1)


async def test_global_services_are_ignored_and_missing_cpu_is_unknown():
    docker = _Docker([_Svc("agent", 0, {}, mode="Global"), _Svc("web", 1, {})])
    p = SwarmProvider(docker, _Cpu({}))
    services = await p.services()
    assert [s.name for s in services] == ["web"]
    assert (await p.observe(services))["web"].utilisation is None


def test_policy_from_labels():
    base = ScalePolicy()
    p = policy_from_labels({"swarm.autoscaler.minimum": "2", "swarm.autoscaler.maximum": "8"}, base)
    assert (p.minimum, p.maximum) == (2, 8)
    assert (policy_from_labels({}, base).minimum, policy_from_labels({}, base).maximum) == (1, 10)
    with pytest.raises(ValueError, match="maximum"):
        policy_from_labels({"swarm.autoscaler.maximum": "lots"}, base)


async def test_cycle_scales_hot_service_and_dry_run_does_not():
    hot = _Svc("hot", 1, {"swarm.autoscaler.maximum": "3"})
    cold = _Svc("cold", 1, {})
    docker = _Docker([hot, cold])
    provider = SwarmProvider(docker, _Cpu({"hot": 0.95, "cold": 0.5}))
    dry = Autoscaler(provider, lambda s: policy_from_labels(s.labels, ScalePolicy()), dry_run=True)
    d = await dry.cycle()
    assert d["hot"].direction == "up" and hot.scaled_to is None
    live = Autoscaler(provider, lambda s: policy_from_labels(s.labels, ScalePolicy()))
    d = await live.cycle()
    assert hot.scaled_to == 2 and d["cold"].direction == "hold" and cold.scaled_to is None


async def test_bad_label_skips_only_that_service():
    bad = _Svc("bad", 1, {"swarm.autoscaler.minimum": "-1"})
    good = _Svc("good", 1, {})
    scaler = Autoscaler(SwarmProvider(_Docker([bad, good]), _Cpu({"bad": 2.0, "good": 2.0})),
                        lambda s: policy_from_labels(s.labels, ScalePolicy()))
    d = await scaler.cycle()
    assert "bad" not in d and good.scaled_to == 4  # ceil(1 x 2.0 / 0.55)
