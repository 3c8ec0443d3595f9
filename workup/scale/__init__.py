"""The autoscaler: CPU and queue depth in, replica counts out.

- :func:`decide` (``_policy``) is the whole rule, pure and exhaustively tested;
- providers observe and act: ``SwarmProvider`` (Docker Swarm services labelled
  ``swarm.autoscaler=true``, CPU from Prometheus/cAdvisor) and ``LocalProvider`` (``workup worker``
  supervisors on this machine, CPU from psutil, processes changed through the controller);
- ``run_autoscaler`` loops: observe, decide, act; every decision is a log line and a metric
  (``ScaleMetrics``); a source that cannot be read (``Unavailable``) holds the cycle.
"""

from typing import TYPE_CHECKING

from ._policy import Decision, Observation, ScalePolicy, ScaleState, decide

if TYPE_CHECKING:   # the names __getattr__ below loads on use, as the type checker sees them
    from ._local import LocalProvider
    from ._loop import Autoscaler, Unavailable, run_autoscaler
    from ._metrics import ScaleMetrics
    from ._swarm import PrometheusCpu, SwarmProvider, policy_from_labels

__all__ = ["Decision", "Observation", "ScalePolicy", "ScaleState", "decide",
           "Autoscaler", "Unavailable", "ScaleMetrics", "run_autoscaler", "SwarmProvider", "PrometheusCpu", "policy_from_labels", "LocalProvider"]

# the loop and the providers load on use: the Swarm provider pulls in the Docker client and the
# local one the controller, which `workup scale --help` and the pure rule do not need
_LAZY = {"Autoscaler": "_loop", "Unavailable": "_loop", "ScaleMetrics": "_metrics", "run_autoscaler": "_loop", "SwarmProvider": "_swarm", "PrometheusCpu": "_swarm",
         "policy_from_labels": "_swarm", "LocalProvider": "_local"}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(name)
