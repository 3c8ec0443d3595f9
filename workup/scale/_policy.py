"""The autoscaling rule: a pure function from what was observed to how many replicas to run.

Shaped after Kubernetes' HPA, which fixed what the Swarm autoscalers we replace got wrong
(the original system both scaled up and down in one cycle and crept one replica at a time):

- a hysteresis band: nothing happens while utilisation stays between ``cpu_down`` and ``cpu_up``;
- outside it, the target is ``ceil(replicas × utilisation / cpu_target)`` (at least one step),
  so one decision lands inside the band instead of creeping one replica per loop;
- a queue backlog above ``queue_up`` messages per replica scales up even when CPU is low
  (I/O-bound services), and blocks a scale-down;
- separate cooldowns for up and down after any change, and a scale-down stabilisation window (the
  highest recommendation of the window wins), so one burst or one quiet sample does not flap;
- min/max always enforced, including a service currently outside them; never up and down in one cycle.
"""

from __future__ import annotations

import math
from typing import Literal

import msgspec

__all__ = ["ScalePolicy", "Observation", "ScaleState", "Decision", "decide"]


class ScalePolicy(msgspec.Struct, frozen=True, kw_only=True):
    minimum: int = 1
    maximum: int = 10
    cpu_up: float = 0.85          # utilisation (of the CPU a replica may use) above which we grow
    cpu_down: float = 0.25        # ... below which we shrink
    queue_up: int = 100           # queued messages per replica above which we grow
    cooldown_up: float = 30.0     # seconds after any change before growing again
    cooldown_down: float = 120.0  # seconds after any change before shrinking
    down_window: float = 300.0    # scale-down stabilisation window
    max_step_up: int = 4          # at most this many replicas added at once (or doubling, if larger)

    def __post_init__(self) -> None:
        if self.minimum < 0 or self.maximum < max(self.minimum, 1):
            raise ValueError(f"need 0 <= minimum <= maximum and maximum >= 1, got {self.minimum}..{self.maximum}")
        if not 0 < self.cpu_down < self.cpu_up:
            raise ValueError(f"need 0 < cpu_down < cpu_up, got {self.cpu_down} and {self.cpu_up}")

    @property
    def cpu_target(self) -> float:
        return (self.cpu_up + self.cpu_down) / 2


class Observation(msgspec.Struct, frozen=True, kw_only=True):
    replicas: int                  # currently configured replicas
    utilisation: float | None      # mean CPU used / CPU available per replica (1.0 = saturated); None = unknown
    queue_depth: int | None = None  # messages ready in the service's work queue; None = unknown
    at: float                      # when observed (seconds, monotonic or unix: only differences matter)


class ScaleState(msgspec.Struct, frozen=True):
    last_change_at: float | None = None
    # (at, replicas) recommendations inside the scale-down window, oldest first
    recent: tuple[tuple[float, int], ...] = ()


class Decision(msgspec.Struct, frozen=True):
    replicas: int                  # what to run now (== observation.replicas: no change)
    reason: str
    direction: Literal["up", "down", "hold"]


def _recommend(policy: ScalePolicy, obs: Observation) -> tuple[int, str]:
    n = max(obs.replicas, 1)
    backlog = obs.queue_depth if obs.queue_depth is not None else 0
    want_cpu = n
    u = obs.utilisation
    why = "no CPU figure: holding" if u is None else "within band"
    if u is not None and u > policy.cpu_up:
        want_cpu = max(n + 1, math.ceil(n * u / policy.cpu_target))
        why = f"cpu {u:.0%} > {policy.cpu_up:.0%}"
    elif u is not None and u < policy.cpu_down and backlog <= policy.queue_up * n // 10:
        want_cpu = min(n - 1, math.ceil(n * u / policy.cpu_target))
        why = f"cpu {u:.0%} < {policy.cpu_down:.0%}"
    if backlog > policy.queue_up * n:
        want_queue = max(n + 1, math.ceil(backlog / policy.queue_up))
        if want_queue > want_cpu:
            return want_queue, f"queue {backlog} > {policy.queue_up}/replica"
    return want_cpu, why


def decide(policy: ScalePolicy, obs: Observation, state: ScaleState) -> tuple[Decision, ScaleState]:
    """What to do now, and the state to pass to the next call."""
    current = obs.replicas
    if current < policy.minimum or current > policy.maximum:
        target = min(max(current, policy.minimum), policy.maximum)
        return (Decision(target, f"outside {policy.minimum}..{policy.maximum}", "up" if target > current else "down"),
                ScaleState(obs.at, ()))

    want, why = _recommend(policy, obs)
    if want > current:
        want = min(want, current + max(policy.max_step_up, current))
    want = min(max(want, policy.minimum), policy.maximum)

    # keep two windows of history; a scale-down needs one full window of it (see below)
    recent = tuple((at, r) for at, r in state.recent if obs.at - at < 2 * policy.down_window) + ((obs.at, want),)
    since_change = math.inf if state.last_change_at is None else obs.at - state.last_change_at

    if want > current:
        if since_change < policy.cooldown_up:
            return Decision(current, f"{why}; cooling down after a change", "hold"), ScaleState(state.last_change_at, recent)
        return Decision(want, why, "up"), ScaleState(obs.at, ())
    # scaling down follows the highest recommendation of the last window, and only once a whole
    # window has been observed, so one quiet sample (or a fresh start) is not enough
    window = [r for at, r in recent if obs.at - at <= policy.down_window]
    seen_full_window = obs.at - recent[0][0] >= policy.down_window
    stable = max(window) if seen_full_window else current
    if stable < current:
        if since_change < policy.cooldown_down:
            return Decision(current, f"{why}; cooling down after a change", "hold"), ScaleState(state.last_change_at, recent)
        return Decision(stable, why, "down"), ScaleState(obs.at, ())
    return Decision(current, why if want == current else f"{why}; waiting for a stable low", "hold"), \
        ScaleState(state.last_change_at, recent)
