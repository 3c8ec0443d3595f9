"""The autoscaler: CPU and queue depth in, replica counts out.

- :func:`decide` (``_policy``) is the whole rule, pure and exhaustively tested;
- providers observe and act: ``SwarmProvider`` (Docker Swarm services labelled
  ``swarm.autoscaler=true``, CPU from Prometheus/cAdvisor) and ``LocalProvider`` (``workup worker``
  supervisors on this machine, CPU from psutil, processes changed through the controller);
- ``run_autoscaler`` loops: observe, decide, act, log every decision.
"""

from ._policy import Decision, Observation, ScalePolicy, ScaleState, decide

__all__ = ["Decision", "Observation", "ScalePolicy", "ScaleState", "decide"]
